//! Statements that write many rows at once: one statement per table whatever the number
//! of rows.
//!
//! On PostgreSQL the rows travel as **one JSON parameter**, read back into rows by
//! `json_populate_recordset` (inserts: typed by the table itself) or `jsonb_to_record`
//! (the rows an update joins as `v`: typed by [`Column`]; [`json_cte`] says how its plan
//! stays a lookup by key). Each statement therefore has one text whatever its number of
//! rows, so every connection parses and prepares it once and PostgreSQL reuses its plan. A `VALUES` list is a new text for every new length:
//! parsed, prepared (a round trip of its own) and planned again, and in the benchmark the
//! group commit's batches came in hundreds of lengths.
//!
//! SQLite, which prepares in process and has no use for a plan cache across lengths,
//! keeps the `VALUES` lists; so does PostgreSQL for a value JSON cannot carry exactly (none
//! of our tables has one; `every_table_takes_the_json_path` checks it).

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, IdenStatic, Iterable,
    QueryResult, Statement, Value,
};

/// Most rows one statement carries (a `VALUES` list: PostgreSQL takes at most 65,535
/// bound values, SQLite 32,766; the widest row here has 19).
const ROWS_PER_STATEMENT: usize = 1_000;

/// A column of the rows an update joins as `v`: its name and its PostgreSQL type.
pub type Column<'a> = (&'a str, &'a str);

/// An insert's `ON CONFLICT (<on>) DO UPDATE SET <update> = excluded.<update>`.
pub struct Upsert<E: EntityTrait + 'static> {
    pub on: &'static [E::Column],
    pub update: &'static [E::Column],
}

impl<E: EntityTrait> Upsert<E> {
    fn on_conflict(&self) -> OnConflict {
        OnConflict::columns(self.on.iter().copied())
            .update_columns(self.update.iter().copied())
            .to_owned()
    }

    fn sql(&self) -> String {
        let on: Vec<String> = self.on.iter().map(|c| quote(c.as_str())).collect();
        let set: Vec<String> = self
            .update
            .iter()
            .map(|c| format!("{0} = excluded.{0}", quote(c.as_str())))
            .collect();
        format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            on.join(", "),
            set.join(", ")
        )
    }
}

/// Insert `rows` (none for none).
pub async fn insert_all<E: EntityTrait>(
    txn: &impl ConnectionTrait,
    rows: Vec<E::ActiveModel>,
    upsert: Option<&Upsert<E>>,
) -> Result<(), DbErr> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        if txn.get_database_backend() == DbBackend::Postgres
            && let Some(stmt) = json_insert::<E>(chunk, upsert)
        {
            txn.execute_raw(stmt).await?;
            continue;
        }
        let mut insert = E::insert_many(chunk.to_vec());
        if let Some(u) = upsert {
            insert = insert.on_conflict(u.on_conflict());
        }
        insert.exec_without_returning(txn).await?;
    }
    Ok(())
}

/// Run `WITH v(<columns>) AS (<rows>) <update>` (none for none); the rows the updates
/// returned. Every row has one value per column.
pub async fn update_from(
    txn: &impl ConnectionTrait,
    columns: &[Column<'_>],
    rows: &[Vec<Value>],
    update: &str,
) -> Result<Vec<QueryResult>, DbErr> {
    let backend = txn.get_database_backend();
    let mut returned = Vec::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let json = match backend {
            DbBackend::Postgres => json_rows(columns, chunk),
            _ => None,
        };
        let (with, values) = match json {
            Some(json) => (json_cte(columns), vec![Value::from(json)]),
            None => values_cte(backend, columns, chunk),
        };
        let stmt = Statement::from_sql_and_values(backend, format!("{with} {update}"), values);
        returned.extend(txn.query_all_raw(stmt).await?);
    }
    Ok(returned)
}

/// `INSERT INTO t (<columns>) SELECT <columns> FROM json_populate_recordset(NULL::t, $1)`
/// for `rows`, the columns being those the first row holds a value of (set or unchanged);
/// `None` when another row holds other columns, or a value JSON cannot carry.
fn json_insert<E: EntityTrait>(
    rows: &[E::ActiveModel],
    upsert: Option<&Upsert<E>>,
) -> Option<Statement> {
    let first = rows.first()?;
    let (set, unset): (Vec<E::Column>, Vec<E::Column>) =
        E::Column::iter().partition(|c| !first.get(*c).is_not_set());
    let mut json = Vec::with_capacity(rows.len());
    for row in rows {
        if unset.iter().any(|c| !row.get(*c).is_not_set()) {
            return None;
        }
        let mut object = serde_json::Map::with_capacity(set.len());
        for c in &set {
            let value = row.get(*c).into_value()?;
            object.insert(c.as_str().to_owned(), json_value(&value)?);
        }
        json.push(serde_json::Value::Object(object));
    }
    let table = quote(E::default().table_name());
    let columns: Vec<String> = set.iter().map(|c| quote(c.as_str())).collect();
    let columns = columns.join(", ");
    let conflict = upsert.map(Upsert::sql).unwrap_or_default();
    let sql = format!(
        "INSERT INTO {table} ({columns}) SELECT {columns} \
         FROM json_populate_recordset(NULL::{table}, $1::json){conflict}"
    );
    let json = serde_json::Value::Array(json).to_string();
    Some(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        [Value::from(json)],
    ))
}

/// `rows` as a JSON array of objects keyed by column name; `None` when a value cannot be
/// carried exactly.
fn json_rows(columns: &[Column<'_>], rows: &[Vec<Value>]) -> Option<String> {
    let mut json = Vec::with_capacity(rows.len());
    for row in rows {
        let mut object = serde_json::Map::with_capacity(columns.len());
        for ((name, _), value) in columns.iter().zip(row) {
            object.insert((*name).to_owned(), json_value(value)?);
        }
        json.push(serde_json::Value::Object(object));
    }
    Some(serde_json::Value::Array(json).to_string())
}

/// `WITH v AS (SELECT r.* FROM rampd_json_rows($1::jsonb) e, jsonb_to_record(e) AS
/// r(<name type>, …))`: `rampd_json_rows` rather than `jsonb_to_recordset` so that the
/// cached plan expects one row and looks each up by its key (migration
/// `m20261202_000081_json_rows` says why). `jsonb`, parsed once, where `json` would be
/// parsed again row by row (12 % slower on 20,000 rows of 1.2 KB).
fn json_cte(columns: &[Column<'_>]) -> String {
    let typed: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
    format!(
        "WITH v AS (SELECT r.* FROM rampd_json_rows($1::jsonb) e, jsonb_to_record(e) AS r({}))",
        typed.join(", ")
    )
}

/// `WITH v(<columns>) AS (VALUES (…), …)` with the placeholders of `backend`, and the
/// values in their order.
fn values_cte(
    backend: DbBackend,
    columns: &[Column<'_>],
    rows: &[Vec<Value>],
) -> (String, Vec<Value>) {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let mut sql = format!("WITH v({}) AS (VALUES ", names.join(", "));
    let mut values = Vec::with_capacity(rows.len() * columns.len());
    for (r, row) in rows.iter().enumerate() {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for (c, value) in row.iter().enumerate() {
            if c > 0 {
                sql.push_str(", ");
            }
            values.push(value.clone());
            match backend {
                DbBackend::Postgres => sql.push_str(&format!("${}", values.len())),
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql.push(')');
    (sql, values)
}

/// `value` as JSON that PostgreSQL reads back into the column exactly: text as a string,
/// integers and booleans as themselves, NULL as null. `None` for any other kind (floats,
/// decimals, bytes, times: none of our columns holds one).
fn json_value(value: &Value) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    fn or_null<T: Into<J>>(v: Option<T>) -> J {
        v.map_or(J::Null, Into::into)
    }
    Some(match value {
        Value::Bool(v) => or_null(*v),
        Value::TinyInt(v) => or_null(*v),
        Value::SmallInt(v) => or_null(*v),
        Value::Int(v) => or_null(*v),
        Value::BigInt(v) => or_null(*v),
        Value::TinyUnsigned(v) => or_null(*v),
        Value::SmallUnsigned(v) => or_null(*v),
        Value::Unsigned(v) => or_null(*v),
        Value::BigUnsigned(v) => or_null(*v),
        Value::String(v) => or_null(v.clone()),
        _ => return None,
    })
}

/// `name` as a quoted PostgreSQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use sea_orm::ActiveValue::Set;
    use sea_orm::{ColumnTrait, ColumnType, EntityTrait, QueryOrder};

    use super::*;
    use crate::storage::entities::{
        order_events, orders, outbox, processed_commands, scheduled_tasks, webhook_attempts,
        webhook_deliveries,
    };
    use crate::storage::test_db::{storage_cases, task_row};

    fn inbox_row(id: &str, reason: Option<&str>) -> processed_commands::ActiveModel {
        processed_commands::ActiveModel {
            id: Set(id.into()),
            tenant: Set("t".into()),
            command_id: Set(id.into()),
            command_type: Set("onramp.create".into()),
            order_id: Set(None),
            outcome: Set("accepted".into()),
            reason: Set(reason.map(str::to_owned)),
            processed_at: Set(1_763_700_000_000),
            fingerprint: Set(Some("f".into())),
        }
    }

    /// Every column of the tables the group commit writes is of a kind JSON carries
    /// exactly, so that on PostgreSQL none of their inserts falls back to `VALUES`.
    #[test]
    fn every_table_takes_the_json_path() {
        fn kinds<E: EntityTrait>() -> Vec<(String, ColumnType)> {
            E::Column::iter()
                .map(|c| (c.as_str().to_owned(), c.def().get_column_type().clone()))
                .collect()
        }
        let columns = [
            kinds::<orders::Entity>(),
            kinds::<order_events::Entity>(),
            kinds::<scheduled_tasks::Entity>(),
            kinds::<outbox::Entity>(),
            kinds::<webhook_deliveries::Entity>(),
            kinds::<webhook_attempts::Entity>(),
            kinds::<processed_commands::Entity>(),
        ];
        for (name, kind) in columns.iter().flatten() {
            assert!(
                matches!(
                    kind,
                    ColumnType::Text
                        | ColumnType::String(_)
                        | ColumnType::Boolean
                        | ColumnType::TinyInteger
                        | ColumnType::SmallInteger
                        | ColumnType::Integer
                        | ColumnType::BigInteger
                ),
                "{name} is {kind:?}: teach json_value to carry it exactly"
            );
        }
    }

    /// One statement text whatever the number of rows, so PostgreSQL prepares it once.
    #[test]
    fn postgres_statements_have_one_text_for_any_number_of_rows() {
        let one = json_insert::<processed_commands::Entity>(&[inbox_row("a", None)], None)
            .expect("json path");
        let three = json_insert::<processed_commands::Entity>(
            &[
                inbox_row("a", None),
                inbox_row("b", None),
                inbox_row("c", None),
            ],
            None,
        )
        .expect("json path");
        assert_eq!(one.sql, three.sql);
        assert_eq!(three.values.map(|v| v.0.len()), Some(1));
        // A stored model's values are `Unchanged`, and written all the same.
        let model = processed_commands::Model {
            id: "a".into(),
            tenant: "t".into(),
            command_id: "a".into(),
            command_type: "onramp.create".into(),
            order_id: None,
            outcome: "accepted".into(),
            reason: None,
            processed_at: 1,
            fingerprint: None,
        };
        let unchanged = json_insert::<processed_commands::Entity>(
            &[sea_orm::IntoActiveModel::into_active_model(model)],
            None,
        )
        .expect("json path");
        assert_eq!(unchanged.sql, one.sql);
        assert_eq!(
            json_cte(&[("v_id", "text"), ("v_n", "bigint")]),
            "WITH v AS (SELECT r.* FROM rampd_json_rows($1::jsonb) e, \
             jsonb_to_record(e) AS r(v_id text, v_n bigint))"
        );
    }

    /// A row that sets a column the first row leaves unset goes the `VALUES` way rather
    /// than losing the value; so does a value JSON cannot carry exactly.
    #[test]
    fn rows_json_cannot_carry_fall_back_to_values() {
        let mut other = inbox_row("b", None);
        other.order_id = Set(Some("o".into()));
        let mut first = inbox_row("a", None);
        first.order_id = sea_orm::ActiveValue::NotSet;
        assert!(json_insert::<processed_commands::Entity>(&[first, other], None).is_none());
        assert!(json_rows(&[("x", "numeric")], &[vec![Value::Double(Some(0.1))]]).is_none());
    }

    #[test]
    fn values_use_each_backends_placeholders() {
        let rows = vec![
            vec![Value::from("a"), Value::from(1i64)],
            vec![Value::from("b"), Value::from(2i64)],
        ];
        let columns = [("x", "text"), ("y", "bigint")];
        let (pg, values) = values_cte(DbBackend::Postgres, &columns, &rows);
        assert_eq!(pg, "WITH v(x, y) AS (VALUES ($1, $2), ($3, $4))");
        assert_eq!(values.len(), 4);
        let (lite, _) = values_cte(DbBackend::Sqlite, &columns, &rows);
        assert_eq!(lite, "WITH v(x, y) AS (VALUES (?, ?), (?, ?))");
    }

    const AWKWARD: &str = "quote \" back\\slash ' apostrophe, unicode ₹ é \u{1F4B8}, \n newline";

    /// Rows come back as written: awkward text, NULLs, integers at their limits.
    async fn rows_round_trip(db: sea_orm::DatabaseConnection) {
        let rows = vec![
            inbox_row("a", Some(AWKWARD)),
            inbox_row("b", None),
            inbox_row("c", Some("")),
        ];
        insert_all::<processed_commands::Entity>(&db, rows, None)
            .await
            .expect("insert");
        let stored = processed_commands::Entity::find()
            .order_by_asc(processed_commands::Column::Id)
            .all(&db)
            .await
            .expect("read");
        let reasons: Vec<Option<&str>> = stored.iter().map(|r| r.reason.as_deref()).collect();
        assert_eq!(reasons, [Some(AWKWARD), None, Some("")]);

        let mut task = task_row("1", "pending", i64::MAX - 1);
        task.lease_until = Set(Some(i64::MIN + 1));
        insert_all::<scheduled_tasks::Entity>(&db, vec![task], None)
            .await
            .expect("insert task");
        let columns = [("v_id", "text"), ("v_error", "text"), ("v_until", "bigint")];
        let rows = vec![
            vec![Value::from("1"), Value::from(AWKWARD), Value::BigInt(None)],
            vec![Value::from("missing"), Value::from("x"), Value::from(1i64)],
        ];
        let update = "UPDATE scheduled_tasks SET last_error = v.v_error, lease_until = v.v_until \
                      FROM v WHERE scheduled_tasks.id = v.v_id RETURNING id";
        let changed = update_from(&db, &columns, &rows, update)
            .await
            .expect("update");
        assert_eq!(changed.len(), 1);
        let task = scheduled_tasks::Entity::find_by_id("1")
            .one(&db)
            .await
            .expect("read task")
            .expect("task");
        assert_eq!(task.last_error.as_deref(), Some(AWKWARD));
        assert_eq!(task.lease_until, None);
        assert_eq!(task.run_at, i64::MAX - 1);
    }

    /// The drive tasks' upsert updates only its columns of the row it conflicts with.
    async fn upsert_updates_its_columns(db: sea_orm::DatabaseConnection) {
        let upsert = &crate::storage::apply::DRIVE_TASK_UPSERT;
        insert_all::<scheduled_tasks::Entity>(&db, vec![task_row("1", "pending", 10)], None)
            .await
            .expect("insert");
        let mut again = task_row("1", "done", 20);
        again.id = Set("other id".into());
        again.attempt = Set(7);
        let new = task_row("2", "pending", 30);
        insert_all::<scheduled_tasks::Entity>(&db, vec![again, new], Some(upsert))
            .await
            .expect("upsert");
        let tasks = scheduled_tasks::Entity::find()
            .order_by_asc(scheduled_tasks::Column::Id)
            .all(&db)
            .await
            .expect("read");
        let seen: Vec<(&str, &str, i64, i32)> = tasks
            .iter()
            .map(|t| (t.id.as_str(), t.status.as_str(), t.run_at, t.attempt))
            .collect();
        assert_eq!(seen, [("1", "done", 20, 0), ("2", "pending", 30, 0)]);
    }

    /// The cached plan of an update looks the rows up by key even when it was made while
    /// the table was empty (a hash join over a sequential scan would be kept as the table
    /// grows: 1.7 ms per statement at 5,000 deliveries in the benchmark).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_update_plans_look_rows_up_by_key() {
        crate::storage::test_db::on_postgres(|db| async move {
            let columns = [("v_id", "text"), ("v_error", "text")];
            let update = format!(
                "{} UPDATE scheduled_tasks SET last_error = v.v_error \
                 FROM v WHERE scheduled_tasks.id = v.v_id RETURNING scheduled_tasks.id",
                json_cte(&columns)
            );
            let args = "'[{\"v_id\":\"1\",\"v_error\":null}]'";
            let plan = crate::storage::test_db::generic_plan(&db, &update, args).await;
            assert!(plan.contains("Index Scan"), "{plan}");
            assert!(!plan.contains("Seq Scan"), "{plan}");
        })
        .await;
    }

    storage_cases!(rows_round_trip, upsert_updates_its_columns);
}
