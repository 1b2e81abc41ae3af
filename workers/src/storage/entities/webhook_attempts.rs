//! `webhook_attempts`: one row per HTTP attempt of a delivery.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub delivery_id: String,
    #[sea_orm(column_type = "Text")]
    pub endpoint_id: String,
    pub attempt: i32,
    pub started_at: i64,
    pub latency_ms: i64,
    pub status_code: Option<i32>,
    /// `timeout`, `connection_failed` or `address_refused` when no response came back.
    #[sea_orm(column_type = "Text", nullable)]
    pub error_kind: Option<String>,
    /// Bounded and redacted (see `rampd_domain::webhooks::excerpt`); never logged.
    #[sea_orm(column_type = "Text", nullable)]
    pub response_excerpt: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
