//! Bounds on what input controls: how deep a document or an expression may nest.
//! Everything that recurses over input checks one of these first, so hostile input
//! fails with a clear error instead of exhausting a stack.

/// Deepest nesting of arrays and objects a JSON document may have.
pub const MAX_JSON_DEPTH: usize = 128;

/// Longest condition text, in bytes.
pub const MAX_CONDITION_BYTES: usize = 16 * 1024;

/// Deepest nesting of parentheses and `!` in a condition.
pub const MAX_CONDITION_DEPTH: usize = 32;

/// Most tests (a path, or a path compared with a literal) one condition may hold.
pub const MAX_CONDITION_TERMS: usize = 256;

/// Longest field path text, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

/// Most segments a field path may have (each can add a level of nesting when a
/// transform sets the path).
pub const MAX_PATH_SEGMENTS: usize = 32;
