//! `rampd_ids(text[])` (PostgreSQL only): the ids a claim chose, one row each, with a
//! planner estimate of **one row**; the lease claims look their rows up through it
//! (`workers/src/storage/lease.rs`).
//!
//! A claim's plan is cached as a generic plan after a few runs, usually while its table is
//! still nearly empty, and then kept as the table grows. `id = ANY(<chosen ids>)` was then
//! cached as a sequential scan of the whole table (seen with `auto_explain` in the
//! benchmark); a set of one estimated row is looked up by key, which is right at every
//! size. The `SET` clause keeps PostgreSQL from inlining the function, which would lose the
//! estimate.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::on_postgres_only(
            manager,
            "CREATE OR REPLACE FUNCTION rampd_ids(ids text[]) RETURNS SETOF text \
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE ROWS 1 \
            SET search_path = pg_catalog \
            AS 'SELECT unnest(ids)'",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::on_postgres_only(manager, "DROP FUNCTION IF EXISTS rampd_ids(text[])").await
    }
}
