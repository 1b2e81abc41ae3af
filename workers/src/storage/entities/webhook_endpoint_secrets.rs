//! `webhook_endpoint_secrets`: signing secrets of an endpoint. `Debug` masks the secret.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoint_secrets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub endpoint_id: String,
    /// `whsec_…`. A secret: never log it.
    #[sea_orm(column_type = "Text")]
    pub secret: String,
    pub created_at: i64,
    /// `None`: the current secret. Otherwise it keeps signing until then.
    pub expires_at: Option<i64>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("id", &self.id)
            .field("endpoint_id", &self.endpoint_id)
            .field("secret", &"****")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
