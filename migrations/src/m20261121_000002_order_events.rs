//! `order_events`: the append-only history (timeline) of each order.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OrderEvents {
    Table,
    Id,
    OrderId,
    Seq,
    Kind,
    FromState,
    ToState,
    Detail,
    CommandId,
    TraceCtx,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OrderEvents::Table)
                    // PostgreSQL: bigserial; SQLite: INTEGER PRIMARY KEY AUTOINCREMENT.
                    .col(
                        ColumnDef::new(OrderEvents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(OrderEvents::OrderId).text().not_null())
                    .col(ColumnDef::new(OrderEvents::Seq).integer().not_null())
                    .col(ColumnDef::new(OrderEvents::Kind).text().not_null())
                    .col(ColumnDef::new(OrderEvents::FromState).text().null())
                    .col(ColumnDef::new(OrderEvents::ToState).text().null())
                    .col(ColumnDef::new(OrderEvents::Detail).text().not_null())
                    .col(ColumnDef::new(OrderEvents::CommandId).text().null())
                    .col(ColumnDef::new(OrderEvents::TraceCtx).text().null())
                    .col(
                        ColumnDef::new(OrderEvents::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("ux_order_events_order_id_seq")
                    .table(OrderEvents::Table)
                    .col(OrderEvents::OrderId)
                    .col(OrderEvents::Seq)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OrderEvents::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
