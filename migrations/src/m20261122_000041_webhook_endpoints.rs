//! `webhook_endpoints` and `webhook_endpoint_secrets`: tenant endpoints as rows (managed
//! by `rampd webhooks endpoint …` and upserted from config), and their signing secrets.
//!
//! A secret row with `expires_at` NULL is the endpoint's current secret; a rotated-out one
//! keeps signing beside it until `expires_at`. Secrets are stored as `whsec_…` text because
//! the worker must sign with them; they are never logged or shown after creation.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    Tenant,
    Url,
    /// JSON array of event type filters.
    EventTypes,
    /// `enabled` or `disabled`.
    Status,
    DisabledReason,
    DisabledAt,
    /// Start of the current failing streak (epoch ms), NULL when healthy.
    FailingSince,
    /// `config` or `cli`.
    Source,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookEndpointSecrets {
    Table,
    Id,
    EndpointId,
    Secret,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use WebhookEndpoints as E;
        manager
            .create_table(
                Table::create()
                    .table(E::Table)
                    .col(ColumnDef::new(E::Id).text().not_null().primary_key())
                    .col(ColumnDef::new(E::Tenant).text().not_null())
                    .col(ColumnDef::new(E::Url).text().not_null())
                    .col(ColumnDef::new(E::EventTypes).text().not_null())
                    .col(ColumnDef::new(E::Status).text().not_null())
                    .col(ColumnDef::new(E::DisabledReason).text().null())
                    .col(ColumnDef::new(E::DisabledAt).big_integer().null())
                    .col(ColumnDef::new(E::FailingSince).big_integer().null())
                    .col(ColumnDef::new(E::Source).text().not_null())
                    .col(ColumnDef::new(E::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(E::UpdatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_endpoints_tenant")
                    .table(E::Table)
                    .col(E::Tenant)
                    .to_owned(),
            )
            .await?;
        use WebhookEndpointSecrets as S;
        manager
            .create_table(
                Table::create()
                    .table(S::Table)
                    .col(ColumnDef::new(S::Id).text().not_null().primary_key())
                    .col(ColumnDef::new(S::EndpointId).text().not_null())
                    .col(ColumnDef::new(S::Secret).text().not_null())
                    .col(ColumnDef::new(S::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(S::ExpiresAt).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_endpoint_secrets_endpoint")
                    .table(S::Table)
                    .col(S::EndpointId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(WebhookEndpointSecrets::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(WebhookEndpoints::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
