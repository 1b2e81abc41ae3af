//! `processed_commands`: the inbox. One row per (tenant, command id) ever processed.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ProcessedCommands {
    Table,
    /// `"<tenant>:<command_id>"`.
    Id,
    Tenant,
    CommandId,
    CommandType,
    OrderId,
    Outcome,
    Reason,
    ProcessedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProcessedCommands::Table)
                    .col(
                        ColumnDef::new(ProcessedCommands::Id)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ProcessedCommands::Tenant).text().not_null())
                    .col(
                        ColumnDef::new(ProcessedCommands::CommandId)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ProcessedCommands::CommandType)
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ProcessedCommands::OrderId).text().null())
                    .col(ColumnDef::new(ProcessedCommands::Outcome).text().not_null())
                    .col(ColumnDef::new(ProcessedCommands::Reason).text().null())
                    .col(
                        ColumnDef::new(ProcessedCommands::ProcessedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ProcessedCommands::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
