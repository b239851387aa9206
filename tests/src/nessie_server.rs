//! The real Nessie of `make services` (its Iceberg REST catalog keeping tables on
//! the s3proxy S3 endpoint): branches made through Nessie's own API, and tables
//! read back without any catalog client: the metadata location from Nessie's
//! content API, then the `iceberg` crate's scan of that metadata file over S3.

use std::sync::Arc;

use futures::TryStreamExt;
use iceberg::TableIdent;
use iceberg::io::{FileIO, FileIOBuilder};
use iceberg::table::StaticTable;
use iceberg_storage_opendal::OpenDalResolvingStorageFactory;
use serde_json::{Value, json};

use crate::services::service_env;

/// The test Nessie and its object store.
#[derive(Debug, Clone)]
pub struct NessieServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The S3 endpoint.
    pub s3_endpoint: String,
    /// The bucket Nessie's warehouse lives in.
    pub bucket: String,
    access_key: String,
    secret_key: String,
    http: reqwest::Client,
}

impl NessieServer {
    /// The servers `make services` started.
    pub fn from_env() -> Self {
        NessieServer {
            url: service_env("DATAFLOW_TEST_NESSIE_URL"),
            s3_endpoint: service_env("DATAFLOW_TEST_S3_ENDPOINT"),
            bucket: service_env("DATAFLOW_TEST_S3_BUCKET"),
            access_key: service_env("DATAFLOW_TEST_S3_ACCESS_KEY"),
            secret_key: service_env("DATAFLOW_TEST_S3_SECRET_KEY"),
            http: reqwest::Client::new(),
        }
    }

    /// The spec's `s3:` block (indented for a connector's settings) with the
    /// store's key.
    pub fn s3_settings(&self) -> String {
        format!(
            "    s3: {{accessKeyId: {}, secretAccessKey: {}, region: us-east-1}}\n",
            self.access_key, self.secret_key
        )
    }

    /// Creates branch `name` from `main`'s head.
    pub async fn create_branch(&self, name: &str) {
        let main: Value = self
            .http
            .get(format!("{}/api/v2/trees/main", self.url))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("main's head")
            .json()
            .await
            .expect("JSON");
        self.http
            .post(format!("{}/api/v2/trees?name={name}&type=BRANCH", self.url))
            .json(&json!({"type": "BRANCH", "name": "main", "hash": main["reference"]["hash"]}))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("create branch {name}: {e}"));
    }

    /// Where `namespace.table`'s current metadata is on `branch`, if the table
    /// exists there (Nessie's content API).
    pub async fn metadata_location(
        &self,
        branch: &str,
        namespace: &str,
        table: &str,
    ) -> Option<String> {
        let response = self
            .http
            .get(format!(
                "{}/api/v2/trees/{branch}/contents/{namespace}.{table}",
                self.url
            ))
            .send()
            .await
            .expect("Nessie answers");
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        let content: Value = response
            .error_for_status()
            .expect("content")
            .json()
            .await
            .expect("JSON");
        content["content"]["metadataLocation"]
            .as_str()
            .map(str::to_owned)
    }

    fn file_io(&self) -> FileIO {
        FileIOBuilder::new(Arc::new(OpenDalResolvingStorageFactory::new()))
            .with_props([
                ("s3.endpoint", self.s3_endpoint.as_str()),
                ("s3.access-key-id", self.access_key.as_str()),
                ("s3.secret-access-key", self.secret_key.as_str()),
                ("s3.region", "us-east-1"),
                ("s3.path-style-access", "true"),
            ])
            .build()
    }

    /// Every row of the table on `branch` (none when it does not exist), each as
    /// a JSON object of its columns, read from S3 with the `iceberg` crate's scan.
    pub async fn read_rows(&self, branch: &str, namespace: &str, table: &str) -> Vec<Value> {
        let Some(location) = self.metadata_location(branch, namespace, table).await else {
            return Vec::new();
        };
        let ident = TableIdent::from_strs(namespace.split('.').chain([table])).expect("ident");
        let table = StaticTable::from_metadata_file(&location, ident, self.file_io())
            .await
            .unwrap_or_else(|e| panic!("open {location}: {e}"));
        rows_of(&table).await
    }
}

/// Every row of `table`'s current snapshot, each as a JSON object of its columns
/// (none before the first snapshot).
pub async fn rows_of(table: &StaticTable) -> Vec<Value> {
    if table.metadata().current_snapshot().is_none() {
        return Vec::new();
    }
    let batches: Vec<arrow_array::RecordBatch> = table
        .scan()
        .build()
        .expect("plan the scan")
        .to_arrow()
        .await
        .expect("scan")
        .try_collect()
        .await
        .expect("read the batches");
    let mut text = Vec::new();
    let mut writer = arrow_json::LineDelimitedWriter::new(&mut text);
    for batch in &batches {
        writer.write(batch).expect("rows as JSON");
    }
    writer.finish().expect("rows as JSON");
    drop(writer);
    String::from_utf8(text)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON row"))
        .collect()
}
