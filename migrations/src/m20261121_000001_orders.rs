//! `orders`: one row per rampd order; `data` is the JSON of the domain order.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    Tenant,
    ClientOrderId,
    Direction,
    State,
    Data,
    SmVersion,
    Version,
    Provider,
    ProviderOrderId,
    Utr,
    Flagged,
    TraceCtx,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .col(ColumnDef::new(Orders::Id).text().not_null().primary_key())
                    .col(ColumnDef::new(Orders::Tenant).text().not_null())
                    .col(ColumnDef::new(Orders::ClientOrderId).text().not_null())
                    .col(ColumnDef::new(Orders::Direction).text().not_null())
                    .col(ColumnDef::new(Orders::State).text().not_null())
                    .col(ColumnDef::new(Orders::Data).text().not_null())
                    .col(ColumnDef::new(Orders::SmVersion).integer().not_null())
                    .col(ColumnDef::new(Orders::Version).big_integer().not_null())
                    .col(ColumnDef::new(Orders::Provider).text().not_null())
                    .col(ColumnDef::new(Orders::ProviderOrderId).text().null())
                    .col(ColumnDef::new(Orders::Utr).text().null())
                    .col(
                        ColumnDef::new(Orders::Flagged)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(ColumnDef::new(Orders::TraceCtx).text().null())
                    .col(ColumnDef::new(Orders::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Orders::UpdatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;

        // An upstream retry of the same create command maps to the same order.
        manager
            .create_index(
                Index::create()
                    .name("ux_orders_tenant_client_order_id")
                    .table(Orders::Table)
                    .col(Orders::Tenant)
                    .col(Orders::ClientOrderId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Never two rampd orders for one provider order (NULLs are distinct on both backends).
        manager
            .create_index(
                Index::create()
                    .name("ux_orders_provider_provider_order_id")
                    .table(Orders::Table)
                    .col(Orders::Provider)
                    .col(Orders::ProviderOrderId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Never one UTR on two orders of the same provider (NULLs are distinct on both backends).
        manager
            .create_index(
                Index::create()
                    .name("ux_orders_provider_utr")
                    .table(Orders::Table)
                    .col(Orders::Provider)
                    .col(Orders::Utr)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_orders_state")
                    .table(Orders::Table)
                    .col(Orders::State)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Orders::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        // SQLite has transactional DDL too: a half-applied migration is never recorded.
        Some(true)
    }
}
