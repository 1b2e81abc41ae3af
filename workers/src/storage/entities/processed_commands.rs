//! `processed_commands`: the inbox of commands already handled.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "processed_commands")]
pub struct Model {
    /// `"<tenant>:<command_id>"`.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub tenant: String,
    #[sea_orm(column_type = "Text")]
    pub command_id: String,
    #[sea_orm(column_type = "Text")]
    pub command_type: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub order_id: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub outcome: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    pub processed_at: i64,
    /// SHA-256 of the command's canonical form; `None` on rows older than fingerprints.
    #[sea_orm(column_type = "Text", nullable)]
    pub fingerprint: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
