//! `type:`-tagged connector specs whose settings sit in a block named after the
//! type (`{type: kafka, kafka: {...}}`), as the Go original writes them. The Go
//! original's newer form, the settings under a generic `config` key
//! (`{type: kafka, config: {...}}`), is read as the same block; specs are always
//! written back in the named form.
//!
//! [`tagged_connector!`] turns one list of connector types into: a plain kind enum
//! (for metrics and logs), the typed spec enum (one variant per type, carrying its
//! settings), and the wire form both are read from and written to. A missing or
//! extra block is a parse error at the spec's path, so nothing downstream has to
//! check for it again.

/// See the module documentation. Each entry is `Variant = "name"`, followed by
/// `(field: SettingsType)` when the type has a settings block (its key in specs
/// is `field` in camelCase: `postgresql_cdc` for `postgresql-cdc` is `postgresqlCdc`), or by
/// `(field: SettingsType, optional)` when that block may be left out (its
/// `Default` is used then). An optional `@common { field: Type, ... }` before the
/// entries adds optional fields every type shares to the wire form (only); the
/// code that reads the wire form takes them out itself.
macro_rules! tagged_connector {
    (
        $(#[$kind_meta:meta])*
        kind $Kind:ident;
        $(#[$enum_meta:meta])*
        spec $Enum:ident;
        wire $Wire:ident;
        $(@common { $( $(#[$cmeta:meta])* $common:ident : $Common:ty ),* $(,)? })?
        $( $(#[$vmeta:meta])* $Variant:ident = $name:literal $(($field:ident : $Block:ty $(, $presence:ident)?))? ),* $(,)?
    ) => {
        $(#[$kind_meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        pub enum $Kind {
            $( $(#[$vmeta])* #[serde(rename = $name)] $Variant, )*
        }

        impl $Kind {
            /// The name used in specs, logs and metrics.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $Kind::$Variant => $name, )*
                }
            }
        }

        impl std::fmt::Display for $Kind {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        $(#[$enum_meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[allow(
            clippy::large_enum_variant,
            reason = "a spec is read once per flow; boxing its settings buys nothing"
        )]
        pub enum $Enum {
            $( $(#[$vmeta])* $Variant $(($Block))?, )*
        }

        impl $Enum {
            /// The connector type.
            pub fn kind(&self) -> $Kind {
                match self {
                    $( tagged_connector!(@any $Enum, $Variant $(, $field)?) => $Kind::$Variant, )*
                }
            }
        }

        /// `type` plus the settings block named after it (the spec's text form).
        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $Wire {
            /// The type; its settings go in the block of the same name.
            #[serde(rename = "type")]
            kind: $Kind,
            $($(
                $(#[$cmeta])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                $common: Option<$Common>,
            )*)?
            /// The settings of whatever `type` says, under a generic key (the Go
            /// original's newer form); the same as the block named after the type.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
            config: Option<serde_json::Value>,
            $($(
                #[doc = concat!("Settings of type `", $name, "`.")]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                $field: Option<$Block>,
            )?)*
        }

        impl TryFrom<$Wire> for $Enum {
            type Error = String;

            fn try_from(mut wire: $Wire) -> Result<Self, String> {
                if let Some(config) = wire.config.take() {
                    match wire.kind {
                        $( $Kind::$Variant => tagged_connector!(@config wire, config, $name $(, $field)?), )*
                    }
                }
                let mut extra: Vec<&str> = Vec::new();
                $($(
                    if wire.$field.is_some() && wire.kind != $Kind::$Variant {
                        extra.push($name);
                    }
                )?)*
                if !extra.is_empty() {
                    return Err(format!(
                        "{} set, but type is {}",
                        extra.iter().map(|b| format!("the {b} block is")).collect::<Vec<_>>().join(" and "),
                        wire.kind.as_str()
                    ));
                }
                Ok(match wire.kind {
                    $( $Kind::$Variant => tagged_connector!(@build wire, $Enum, $Variant, $name $(, $field $(, $presence)?)?), )*
                })
            }
        }

        impl From<&$Enum> for $Wire {
            fn from(spec: &$Enum) -> Self {
                #[allow(unused_mut)]
                let mut wire = $Wire {
                    kind: spec.kind(),
                    config: None,
                    $($( $common: None, )*)?
                    $($( $field: None, )?)*
                };
                match spec {
                    $( tagged_connector!(@pattern $Enum, $Variant $(, $field)?) => {
                        $( wire.$field = Some($field.clone()); )?
                    } )*
                }
                wire
            }
        }

        impl serde::Serialize for $Enum {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $Wire::from(self).serialize(serializer)
            }
        }

        impl<'de> serde::Deserialize<'de> for $Enum {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let wire = $Wire::deserialize(deserializer)?;
                Self::try_from(wire).map_err(serde::de::Error::custom)
            }
        }

        impl schemars::JsonSchema for $Enum {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($Enum).into()
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                $Wire::json_schema(generator)
            }
        }
    };
    (@config $wire:ident, $config:ident, $name:literal, $field:ident) => {{
        if $wire.$field.is_some() {
            return Err(format!("both config and the {0} block are set; use one", $name));
        }
        let block = serde_path_to_error::deserialize($config).map_err(|e| {
            let at = e.path().to_string();
            let at = if at.is_empty() || at == "." { String::new() } else { format!(".{at}") };
            format!("config{at}: {}", e.into_inner())
        })?;
        $wire.$field = Some(block);
    }};
    (@config $wire:ident, $config:ident, $name:literal) => {{
        if !($config.is_null() || $config.as_object().is_some_and(|m| m.is_empty())) {
            return Err(format!("type {} takes no config", $name));
        }
    }};
    (@pattern $Enum:ident, $Variant:ident, $field:ident) => { $Enum::$Variant($field) };
    (@pattern $Enum:ident, $Variant:ident) => { $Enum::$Variant };
    (@any $Enum:ident, $Variant:ident, $field:ident) => { $Enum::$Variant(_) };
    (@any $Enum:ident, $Variant:ident) => { $Enum::$Variant };
    (@build $wire:ident, $Enum:ident, $Variant:ident, $name:literal, $field:ident, optional) => {
        $Enum::$Variant($wire.$field.unwrap_or_default())
    };
    (@build $wire:ident, $Enum:ident, $Variant:ident, $name:literal, $field:ident $(, required)?) => {
        $Enum::$Variant($wire.$field.ok_or_else(|| format!("type {0} needs a {0} block", $name))?)
    };
    (@build $wire:ident, $Enum:ident, $Variant:ident, $name:literal) => { $Enum::$Variant };
}

pub(crate) use tagged_connector;
