//! `provider_callbacks`: the provider's own webhooks that passed the signature check, one
//! row per distinct body, with what rampd did with it.
//!
//! The id is `"<provider>:<sha256 of the raw body>"`: the provider sends no event id, so
//! the exact bytes are the callback's identity, and a repeat is recognised by its id. Only
//! what an operator needs is kept (order ids, status, outcome), never the body, which
//! carries the customer's name, email and phone. Callbacks for orders rampd does not know
//! (`outcome = 'unknown_order'`) are listed for a person by the outcome index.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ProviderCallbacks {
    Table,
    Id,
    Provider,
    ProviderOrderId,
    OrderId,
    Direction,
    Status,
    Outcome,
    ReceivedAt,
}

const INDEX: &str = "ix_provider_callbacks_outcome_received_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ProviderCallbacks as C;
        manager
            .create_table(
                Table::create()
                    .table(C::Table)
                    .col(ColumnDef::new(C::Id).text().not_null().primary_key())
                    .col(ColumnDef::new(C::Provider).text().not_null())
                    .col(ColumnDef::new(C::ProviderOrderId).text().not_null())
                    .col(ColumnDef::new(C::OrderId).text().null())
                    .col(ColumnDef::new(C::Direction).text().not_null())
                    .col(ColumnDef::new(C::Status).text().not_null())
                    .col(ColumnDef::new(C::Outcome).text().not_null())
                    .col(ColumnDef::new(C::ReceivedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(C::Table)
                    .col(C::Outcome)
                    .col(C::ReceivedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ProviderCallbacks::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
