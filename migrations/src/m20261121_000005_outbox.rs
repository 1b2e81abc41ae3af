//! `outbox`: NATS messages committed with the decision that produced them, relayed later.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    Subject,
    Payload,
    OrderId,
    TraceCtx,
    CreatedAt,
    PublishedAt,
    Attempts,
    LeaseOwner,
    LeaseUntil,
    LastError,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(ColumnDef::new(Outbox::Id).text().not_null().primary_key())
                    .col(ColumnDef::new(Outbox::Subject).text().not_null())
                    .col(ColumnDef::new(Outbox::Payload).text().not_null())
                    .col(ColumnDef::new(Outbox::OrderId).text().null())
                    .col(ColumnDef::new(Outbox::TraceCtx).text().null())
                    .col(ColumnDef::new(Outbox::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Outbox::PublishedAt).big_integer().null())
                    .col(
                        ColumnDef::new(Outbox::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(Outbox::LeaseOwner).text().null())
                    .col(ColumnDef::new(Outbox::LeaseUntil).big_integer().null())
                    .col(ColumnDef::new(Outbox::LastError).text().null())
                    .to_owned(),
            )
            .await?;

        // The relay query: published_at IS NULL ORDER BY created_at.
        manager
            .create_index(
                Index::create()
                    .name("ix_outbox_published_at_created_at")
                    .table(Outbox::Table)
                    .col(Outbox::PublishedAt)
                    .col(Outbox::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
