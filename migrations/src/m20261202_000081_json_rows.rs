//! `rampd_json_rows(jsonb)` (PostgreSQL only): the elements of a JSON array, one row each,
//! with a planner estimate of **one row**.
//!
//! The write path sends a batch's rows as one JSON parameter, so that each statement has
//! one text and one cached plan whatever the batch size (`workers/src/storage/many_rows.rs`).
//! `jsonb_to_recordset` tells the planner to expect 100 rows; a plan cached while the
//! tables were small then joins the batch to the table by hashing a sequential scan, and
//! keeps doing so once the table holds millions of rows. With one row expected, the
//! cached plan looks every row up by its key, which is the right plan at every size. The
//! `SET` clause keeps PostgreSQL from inlining the function, which would bring back the
//! estimate of 100.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::on_postgres_only(
            manager,
            "CREATE OR REPLACE FUNCTION rampd_json_rows(rows jsonb) RETURNS SETOF jsonb \
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE ROWS 1 \
            SET search_path = pg_catalog \
            AS 'SELECT jsonb_array_elements(rows)'",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::on_postgres_only(manager, "DROP FUNCTION IF EXISTS rampd_json_rows(jsonb)").await
    }
}
