//! Reading orders.

use rampd_domain::order::Order;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::entities::orders;

/// An order as stored, with the version its next write must match.
#[derive(Debug, Clone)]
pub struct StoredOrder {
    pub order: Order,
    pub version: i64,
    pub trace_ctx: Option<String>,
}

fn decode(m: orders::Model) -> Result<StoredOrder, DbErr> {
    let order: Order = serde_json::from_str(&m.data)
        .map_err(|e| DbErr::Custom(format!("order {} has unreadable data: {e}", m.id)))?;
    Ok(StoredOrder {
        order,
        version: m.version,
        trace_ctx: m.trace_ctx,
    })
}

pub async fn load(db: &impl ConnectionTrait, id: &str) -> Result<Option<StoredOrder>, DbErr> {
    orders::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .map(decode)
        .transpose()
}

pub async fn load_by_client_id(
    db: &impl ConnectionTrait,
    tenant: &str,
    client_order_id: &str,
) -> Result<Option<StoredOrder>, DbErr> {
    orders::Entity::find()
        .filter(orders::Column::Tenant.eq(tenant))
        .filter(orders::Column::ClientOrderId.eq(client_order_id))
        .one(db)
        .await?
        .map(decode)
        .transpose()
}
