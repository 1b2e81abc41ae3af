//! `orders.history_seq`: the number of the order's last history row (`order_events.seq`).
//!
//! A write that adds history used to read each order's `MAX(seq)` first, the costliest
//! statement of the write path (issue 10). Now the order's own update advances this
//! column (`history_seq = history_seq + <rows added>`, under the same version check) and
//! returns it, and the new rows are numbered from it. Rows written before this migration
//! are set to their order's last history number.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Orders {
    Table,
    HistorySeq,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .add_column(
                        ColumnDef::new(Orders::HistorySeq)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE orders SET history_seq = COALESCE(\
                 (SELECT MAX(e.seq) FROM order_events e WHERE e.order_id = orders.id), 0)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .drop_column(Orders::HistorySeq)
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
