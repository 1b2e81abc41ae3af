//! `order_events`: the append-only history of each order.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "order_events")]
pub struct Model {
    /// Database-assigned; leave it `NotSet` on insert.
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub order_id: String,
    /// 1, 2, 3… per order; `(order_id, seq)` is unique.
    pub seq: i32,
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub from_state: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub to_state: Option<String>,
    /// JSON.
    #[sea_orm(column_type = "Text")]
    pub detail: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub command_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub trace_ctx: Option<String>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
