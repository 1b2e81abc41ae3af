//! The inbox remembers what each command said: `processed_commands.fingerprint`, the
//! SHA-256 of the command's canonical form (`rampd_domain::command_identity::Fingerprint`),
//! so a command id reused for a different body is refused instead of being dropped as a
//! repeat. Rows written before this migration keep a NULL fingerprint ("unknown"): a
//! repeat of their command id is treated as a duplicate, as it always was.
//!
//! The inbox key is (tenant, command id). The primary key `"<tenant>:<command_id>"`
//! already was that pair (a tenant id cannot contain `:`); the unique index states it in
//! the schema and serves lookups by the pair.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ProcessedCommands {
    Table,
    Tenant,
    CommandId,
    Fingerprint,
}

const INDEX: &str = "ux_processed_commands_tenant_command_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ProcessedCommands::Table)
                    .add_column(ColumnDef::new(ProcessedCommands::Fingerprint).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(ProcessedCommands::Table)
                    .col(ProcessedCommands::Tenant)
                    .col(ProcessedCommands::CommandId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(ProcessedCommands::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ProcessedCommands::Table)
                    .drop_column(ProcessedCommands::Fingerprint)
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
