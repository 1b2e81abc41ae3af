//! `webhook_deliveries`: one row per (event, endpoint) delivery, retried durably.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    /// The Standard Webhooks `webhook-id`.
    Id,
    OrderId,
    Tenant,
    EndpointId,
    Url,
    EventType,
    Body,
    Status,
    Attempt,
    RunAt,
    LeaseOwner,
    LeaseUntil,
    LastStatus,
    LastError,
    TraceCtx,
    CreatedAt,
    DeliveredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(
                        ColumnDef::new(WebhookDeliveries::Id)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::OrderId).text().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::Tenant).text().not_null())
                    .col(
                        ColumnDef::new(WebhookDeliveries::EndpointId)
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::Url).text().not_null())
                    .col(
                        ColumnDef::new(WebhookDeliveries::EventType)
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::Body).text().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::Status).text().not_null())
                    .col(
                        ColumnDef::new(WebhookDeliveries::Attempt)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::RunAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::LeaseOwner).text().null())
                    .col(
                        ColumnDef::new(WebhookDeliveries::LeaseUntil)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::LastStatus)
                            .integer()
                            .null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::LastError).text().null())
                    .col(ColumnDef::new(WebhookDeliveries::TraceCtx).text().null())
                    .col(
                        ColumnDef::new(WebhookDeliveries::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::DeliveredAt)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_status_run_at")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Status)
                    .col(WebhookDeliveries::RunAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
