//! `webhook_attempts`: one row per HTTP attempt of a delivery, and `dead_at` on
//! `webhook_deliveries` (when a delivery was dead-lettered, for `replay --dead-since`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    EndpointId,
    /// 1-based, within the delivery's current ladder.
    Attempt,
    StartedAt,
    LatencyMs,
    /// HTTP status when a response came back.
    StatusCode,
    /// `timeout`, `connection_failed`, `address_refused` when none did.
    ErrorKind,
    /// Bounded, redacted start of the response body.
    ResponseExcerpt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    EndpointId,
    Status,
    OrderId,
    DeadAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use WebhookAttempts as A;
        manager
            .create_table(
                Table::create()
                    .table(A::Table)
                    .col(ColumnDef::new(A::Id).text().not_null().primary_key())
                    .col(ColumnDef::new(A::DeliveryId).text().not_null())
                    .col(ColumnDef::new(A::EndpointId).text().not_null())
                    .col(ColumnDef::new(A::Attempt).integer().not_null())
                    .col(ColumnDef::new(A::StartedAt).big_integer().not_null())
                    .col(ColumnDef::new(A::LatencyMs).big_integer().not_null())
                    .col(ColumnDef::new(A::StatusCode).integer().null())
                    .col(ColumnDef::new(A::ErrorKind).text().null())
                    .col(ColumnDef::new(A::ResponseExcerpt).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_attempts_delivery")
                    .table(A::Table)
                    .col(A::DeliveryId)
                    .to_owned(),
            )
            .await?;
        use WebhookDeliveries as D;
        manager
            .alter_table(
                Table::alter()
                    .table(D::Table)
                    .add_column(ColumnDef::new(D::DeadAt).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_endpoint_status")
                    .table(D::Table)
                    .col(D::EndpointId)
                    .col(D::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_order")
                    .table(D::Table)
                    .col(D::OrderId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use WebhookDeliveries as D;
        for ix in [
            "ix_webhook_deliveries_order",
            "ix_webhook_deliveries_endpoint_status",
        ] {
            manager
                .drop_index(Index::drop().name(ix).table(D::Table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(D::Table)
                    .drop_column(D::DeadAt)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(WebhookAttempts::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
