//! Reading orders.

use std::collections::HashMap;
use std::sync::OnceLock;

use rampd_domain::order::{Order, PaymentRefKind};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, IdenStatic,
    Iterable, QueryFilter, Statement,
};

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

/// The orders of `ids` that exist, by id, in one query; each decoded on its own, so an
/// unreadable one fails only its own reader.
pub async fn load_many(
    db: &impl ConnectionTrait,
    ids: &[&str],
) -> Result<HashMap<String, Result<StoredOrder, DbErr>>, DbErr> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = orders::Entity::find()
        .filter(orders::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|m| (m.id.clone(), decode(m)))
        .collect())
}

/// What a command needs read before it is decided, in one query: the inbox row of its
/// command id (`inbox`: `None` when there is none, else the fingerprint it holds) and the
/// order its client order id names.
pub struct CommandTarget {
    pub inbox: Option<Option<String>>,
    pub order: Option<StoredOrder>,
}

pub async fn load_for_command(
    db: &impl ConnectionTrait,
    inbox_id: &str,
    tenant: &str,
    client_order_id: &str,
) -> Result<CommandTarget, DbErr> {
    let backend = db.get_database_backend();
    let sql = command_target_sql(backend).to_string();
    let values = [inbox_id.into(), tenant.into(), client_order_id.into()];
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .ok_or_else(|| DbErr::Custom("a one-row select returned no row".into()))?;
    let inbox = match row.try_get::<Option<String>>("", "pc_id")? {
        None => None,
        Some(_) => Some(row.try_get::<Option<String>>("", "pc_fingerprint")?),
    };
    let order = match row.try_get::<Option<String>>("", "id")? {
        None => None,
        Some(_) => Some(decode(orders::Model::from_query_result(&row, "")?)?),
    };
    Ok(CommandTarget { inbox, order })
}

/// The statement of [`load_for_command`] for `backend`, built once per process (it is read
/// for every command).
fn command_target_sql(backend: DbBackend) -> &'static str {
    static POSTGRES: OnceLock<String> = OnceLock::new();
    static OTHER: OnceLock<String> = OnceLock::new();
    let cell = match backend {
        DbBackend::Postgres => &POSTGRES,
        _ => &OTHER,
    };
    cell.get_or_init(|| {
        let p = |n: usize| match backend {
            DbBackend::Postgres => format!("${n}"),
            _ => "?".to_string(),
        };
        let columns: Vec<String> = orders::Column::iter()
            .map(|c| format!("o.{}", c.as_str()))
            .collect();
        format!(
            "SELECT pc.id AS pc_id, pc.fingerprint AS pc_fingerprint, {} \
             FROM (SELECT 1 AS one) AS x \
             LEFT JOIN processed_commands AS pc ON pc.id = {} \
             LEFT JOIN orders AS o ON o.tenant = {} AND o.client_order_id = {}",
            columns.join(", "),
            p(1),
            p(2),
            p(3)
        )
    })
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

/// Which of `hashes` (lower case) orders of `provider` other than `order_id` already hold
/// as the transaction that settles them (the `deposit_tx_hash` column, unique per
/// provider): a mint's credit, an off-ramp's or a redeem's deposit.
pub async fn held_tx_hashes(
    db: &impl ConnectionTrait,
    provider: &str,
    order_id: &str,
    hashes: &[String],
) -> Result<Vec<String>, DbErr> {
    Ok(orders::Entity::find()
        .filter(orders::Column::Provider.eq(provider))
        .filter(orders::Column::DepositTxHash.is_in(hashes.iter().cloned()))
        .filter(orders::Column::Id.ne(order_id))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|m| m.deposit_tx_hash)
        .collect())
}

/// The order, other than `order_id`, that holds a payment reference (`utr` or
/// `deposit_tx_hash`, as the unique indexes store them) at `order_id`'s provider: its id
/// and tenant. The scope is the indexes' own, (provider, reference), across tenants.
pub async fn holder_of_payment_ref(
    db: &impl ConnectionTrait,
    order_id: &str,
    kind: PaymentRefKind,
    reference: &str,
) -> Result<Option<(String, String)>, DbErr> {
    let Some(mine) = orders::Entity::find_by_id(order_id.to_string())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let column = match kind {
        PaymentRefKind::Utr => orders::Column::Utr,
        PaymentRefKind::TxHash => orders::Column::DepositTxHash,
    };
    Ok(orders::Entity::find()
        .filter(orders::Column::Provider.eq(mine.provider))
        .filter(column.eq(reference))
        .filter(orders::Column::Id.ne(order_id))
        .one(db)
        .await?
        .map(|m| (m.id, m.tenant)))
}

/// The order that `provider`'s order `provider_order_id` belongs to (the unique index
/// `(provider, provider_order_id)`: a provider order is ours at most once, whatever the
/// tenant).
pub async fn load_by_provider_order(
    db: &impl ConnectionTrait,
    provider: &str,
    provider_order_id: &str,
) -> Result<Option<StoredOrder>, DbErr> {
    orders::Entity::find()
        .filter(orders::Column::Provider.eq(provider))
        .filter(orders::Column::ProviderOrderId.eq(provider_order_id))
        .one(db)
        .await?
        .map(decode)
        .transpose()
}
