//! `webhook_endpoints`: a tenant's webhook endpoint.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub tenant: String,
    #[sea_orm(column_type = "Text")]
    pub url: String,
    /// JSON array of event type filters (`["*"]`, `["order.*"]`, …).
    #[sea_orm(column_type = "Text")]
    pub event_types: String,
    /// `enabled` or `disabled`.
    #[sea_orm(column_type = "Text")]
    pub status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<i64>,
    /// Start of the current failing streak; `None` while healthy.
    pub failing_since: Option<i64>,
    /// `config` or `cli`.
    #[sea_orm(column_type = "Text")]
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
