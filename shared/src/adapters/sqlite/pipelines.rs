//! [`PipelineStore`](crate::ports::PipelineStore) on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, from_json, to_json};
use crate::domain::{EventKey, PipelineDefinition};
use crate::ports::{PipelineStore, StoreResult};

#[async_trait]
impl PipelineStore for SqliteStore {
    async fn put_pipeline(&self, pipeline: &PipelineDefinition) -> StoreResult<()> {
        let name = pipeline.name.clone();
        let key = pipeline.listens_to.as_str().to_owned();
        let data = to_json(pipeline)?;
        self.write(move |c| {
            c.execute(
                "INSERT INTO pipelines (name, listens_to, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET listens_to = excluded.listens_to, data = excluded.data",
                params![name, key, data],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_pipeline(&self, name: &str) -> StoreResult<Option<PipelineDefinition>> {
        let name = name.to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT data FROM pipelines WHERE name = ?1")?
                .query_row([name], |r| from_json(&r.get::<_, String>(0)?))
                .optional()
        })
        .await
    }

    async fn list_pipelines(&self) -> StoreResult<Vec<PipelineDefinition>> {
        self.read(move |c| {
            c.prepare_cached("SELECT data FROM pipelines ORDER BY name")?
                .query_map([], |r| from_json(&r.get::<_, String>(0)?))?
                .collect()
        })
        .await
    }

    async fn delete_pipeline(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_owned();
        self.write(move |c| Ok(c.execute("DELETE FROM pipelines WHERE name = ?1", [name])? > 0))
            .await
    }

    async fn listeners_of(&self, key: &EventKey) -> StoreResult<Vec<String>> {
        let key = key.as_str().to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT name FROM pipelines WHERE listens_to = ?1 ORDER BY name")?
                .query_map([key], |r| r.get(0))?
                .collect()
        })
        .await
    }
}
