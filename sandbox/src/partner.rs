//! The Partner API simulator (provider-docs 002 v2.8.0, 004 v2.5.0; `providers.md` §4),
//! served by the sandbox under `/partner`. It shares no code with the connector it tests:
//! its bodies are written from the documents.
//!
//! - Every request needs `Authorization: Bearer <token>` (401 otherwise) and the tenant id
//!   in the configured header (400 "Tenant Id is missing in Headers").
//! - `POST /transaction/deposit-requests` answers 201; a deposit to a wallet whose name
//!   ends in `reject` or of more than `max_deposit` tokens is the documented rejection
//!   (`statusStage: FINAL`, "Rejected request due to validation failures").
//! - `POST /transaction/confirmation-requests`: `confirm: YES` answers the documented 201
//!   (`paymentStatus: APPROVED`, `tokenMintStatus: PENDING`) and schedules the mint: a
//!   `Completed` credit to the wallet, with the deposit request id as its memo, appears in
//!   the history after `mint_after_reads` history reads. `confirm: NO`, and any second
//!   confirmation of a request, answers the 400 "Successfully Invalidated Confirmation
//!   Request"; an unknown request "Initiation of deposit request got failed".
//! - `GET /transactions/identifier/{identifier}/type/{on-chain|off-chain}/history?memo=`
//!   lists the on-chain transfers from or to the identifier (amounts in 18-decimal base
//!   units), narrowed to the memo.
//! - `PUT /transaction/redeem/fiat-transfer/{transactionHash}` records a payout against a
//!   completed on-chain transfer; the same `referenceId` again answers the same
//!   `transactionId`.
//!
//! Faults: `lose_deposit_answers` and `lose_confirmation_answers` carry the first requests
//! out and answer 504, as an answer lost on the way would; `invalidate_confirmations`
//! answers every confirmation with the "Invalidated" 400; `history_ignores_memo` lists the
//! whole history whatever the memo; `hold_answers` carries a kind of
//! creating call out and holds its answer (for tests that stop the caller meanwhile).
//!
//! Control (no auth): `POST /partner/sandbox/transfers` adds an on-chain transfer (a
//! user's redeem), `{from, to, amount, status?, revertReason?}` → `{trxId}`;
//! `GET /partner/sandbox/stats` counts what was asked ([`PartnerStats`]).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// What the simulator expects and how it behaves.
#[derive(Clone, Debug)]
pub struct PartnerSimConfig {
    pub token: String,
    pub tenant_id: String,
    pub tenant_header: String,
    /// History reads after a confirmation before its mint credit shows.
    pub mint_after_reads: u32,
    /// Deposits above this many tokens are rejected.
    pub max_deposit: Decimal,
    /// The first this many deposit requests are carried out, but answered 504 as if the
    /// answer was lost on the way (a caller cannot tell whether they arrived).
    pub lose_deposit_answers: u32,
    /// The same for confirmations.
    pub lose_confirmation_answers: u32,
    /// Answer every confirmation with the 400 "Successfully Invalidated Confirmation
    /// Request", as if the request had been invalidated before it was confirmed.
    pub invalidate_confirmations: bool,
    /// List the whole history whatever `memo` asks (the documents do not say the filter
    /// is exact).
    pub history_ignores_memo: bool,
}

impl Default for PartnerSimConfig {
    fn default() -> Self {
        PartnerSimConfig {
            token: "sandbox-partner-token".into(),
            tenant_id: "4e6cb408-8a22-4edc-ba0f-e0f8071efc64".into(),
            tenant_header: "x-tenant-id".into(),
            mint_after_reads: 1,
            max_deposit: Decimal::from(10_000),
            lose_deposit_answers: 0,
            lose_confirmation_answers: 0,
            invalidate_confirmations: false,
            history_ignores_memo: false,
        }
    }
}

/// Counts of what the simulator was asked, for tests and the benchmark.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PartnerStats {
    pub deposit_requests: u64,
    pub deposits_rejected: u64,
    pub confirmations: u64,
    pub cancellations: u64,
    pub history_reads: u64,
    pub fiat_transfers: u64,
}

#[derive(Clone)]
struct Deposit {
    amount: Decimal,
    token: String,
    wallet: String,
    /// Set once confirmed or cancelled: further confirmations are invalidated.
    settled: bool,
}

#[derive(Clone)]
struct Transfer {
    trx_id: String,
    from: String,
    to: String,
    /// Tokens.
    amount: Decimal,
    status: String,
    revert_reason: Option<String>,
    memo: Option<String>,
    /// Not listed until this many more history reads.
    hidden_for: u32,
}

#[derive(Default)]
struct World {
    deposits: HashMap<String, Deposit>,
    transfers: Vec<Transfer>,
    /// referenceId → (transaction hash, transactionId).
    payouts: HashMap<String, (String, String)>,
    stats: PartnerStats,
    /// Answers lost so far: (deposit requests, confirmations).
    lost: (u32, u32),
}

/// The 504 of an answer lost after the request was carried out.
fn lost_answer() -> Response {
    errors(
        StatusCode::GATEWAY_TIMEOUT,
        "gateway",
        "upstream request timeout",
    )
}

/// The simulator's state; cheap to clone.
#[derive(Clone)]
pub struct PartnerSim {
    config: Arc<PartnerSimConfig>,
    world: Arc<Mutex<World>>,
    /// Which creating call's answers are held after the call was carried out, and how
    /// long ([`PartnerSim::hold_answers`]).
    hold: Arc<Mutex<Option<(Creating, Duration)>>>,
}

impl PartnerSim {
    pub fn new(config: PartnerSimConfig) -> Self {
        PartnerSim {
            config: Arc::new(config),
            world: Arc::default(),
            hold: Arc::default(),
        }
    }

    /// From now on, carry out each call of `call` at once but hold its answer for `hold`
    /// (`None`: answer every call at once), so a test can stop the caller while the call
    /// has reached the provider and its answer has not.
    pub fn hold_answers(&self, held: Option<(Creating, Duration)>) {
        *self.hold.lock().unwrap_or_else(|e| e.into_inner()) = held;
    }

    pub fn stats(&self) -> PartnerStats {
        self.world().stats.clone()
    }

    /// Add a completed on-chain transfer (a user's redeem); returns its hash.
    pub fn add_transfer(&self, from: &str, to: &str, amount: Decimal) -> String {
        self.push_transfer(from, to, amount, "Completed", None)
    }

    /// Add an on-chain transfer with this status (and revert reason); returns its hash.
    pub fn push_transfer(
        &self,
        from: &str,
        to: &str,
        amount: Decimal,
        status: &str,
        revert_reason: Option<String>,
    ) -> String {
        let trx_id = format!("0x{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        self.world().transfers.push(Transfer {
            trx_id: trx_id.clone(),
            from: from.into(),
            to: to.into(),
            amount,
            status: status.into(),
            revert_reason,
            memo: None,
            hidden_for: 0,
        });
        trx_id
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The routes, to be nested under `/partner`.
    pub fn router(&self) -> Router {
        let creating = Router::new()
            .route("/transaction/deposit-requests", post(deposit))
            .route("/transaction/confirmation-requests", post(confirm))
            .route(
                "/transaction/redeem/fiat-transfer/{hash}",
                put(fiat_transfer),
            )
            .layer(axum::middleware::from_fn_with_state(self.clone(), held));
        Router::new()
            .merge(creating)
            .route(
                "/transactions/identifier/{identifier}/type/{kind}/history",
                get(history),
            )
            .route("/sandbox/transfers", post(add_transfer))
            .route("/sandbox/stats", get(stats))
            .with_state(self.clone())
    }
}

/// The calls that create something at the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Creating {
    Deposit,
    Confirmation,
    FiatTransfer,
}

impl Creating {
    fn of(path: &str) -> Option<Creating> {
        [
            ("/transaction/deposit-requests", Creating::Deposit),
            ("/transaction/confirmation-requests", Creating::Confirmation),
            ("/transaction/redeem/fiat-transfer/", Creating::FiatTransfer),
        ]
        .into_iter()
        .find(|(p, _)| path.contains(p))
        .map(|(_, c)| c)
    }
}

/// Carry the call out, then hold its answer as [`PartnerSim::hold_answers`] says.
async fn held(
    State(sim): State<PartnerSim>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let call = Creating::of(request.uri().path());
    let answer = next.run(request).await;
    let held = *sim.hold.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((which, hold)) = held
        && Some(which) == call
    {
        tokio::time::sleep(hold).await;
    }
    answer
}

/// A documented error body: `{"errors":[{"type","message"}]}`.
fn errors(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "errors": [{ "type": kind, "message": message }] })),
    )
        .into_response()
}

/// The answer to a request without the bearer token and tenant header every documented
/// endpoint requires; `None` when it has both.
fn refusal(sim: &PartnerSim, headers: &HeaderMap) -> Option<Response> {
    let bearer = format!("Bearer {}", sim.config.token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
        return Some(errors(
            StatusCode::UNAUTHORIZED,
            "Access Control",
            "Access denied for this resource",
        ));
    }
    let tenant = headers
        .get(sim.config.tenant_header.as_str())
        .and_then(|v| v.to_str().ok());
    (tenant != Some(sim.config.tenant_id.as_str())).then(|| {
        errors(
            StatusCode::BAD_REQUEST,
            "catch",
            "Tenant Id is missing in Headers",
        )
    })
}

/// An amount as the documents type it (a number), also accepted as a string.
fn amount_of(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        Value::String(s) => Decimal::from_str(s).ok(),
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DepositBody {
    amount: Value,
    token: String,
    wallet_identifier: String,
    wallet_identifier_type: String,
}

fn valid_deposit(b: &DepositBody) -> Option<Decimal> {
    let amount = amount_of(&b.amount).filter(|a| *a > Decimal::ZERO)?;
    let kind_ok = matches!(
        b.wallet_identifier_type.as_str(),
        "CUSTOM NAMESPACE" | "WALLET ADDRESS"
    );
    (kind_ok && !b.token.is_empty() && !b.wallet_identifier.is_empty()).then_some(amount)
}

async fn deposit(State(sim): State<PartnerSim>, headers: HeaderMap, body: Json<Value>) -> Response {
    if let Some(r) = refusal(&sim, &headers) {
        return r;
    }
    let failed = || {
        errors(
            StatusCode::BAD_REQUEST,
            "catch",
            "Initiation of deposit request got failed",
        )
    };
    let Ok(b) = serde_json::from_value::<DepositBody>(body.0) else {
        return failed();
    };
    let Some(amount) = valid_deposit(&b) else {
        return failed();
    };
    let id = Uuid::new_v4().to_string();
    let rejected = b.wallet_identifier.ends_with("reject") || amount > sim.config.max_deposit;
    let mut w = sim.world();
    w.stats.deposit_requests += 1;
    let (stage, status, reason) = if rejected {
        w.stats.deposits_rejected += 1;
        (
            "FINAL",
            "Rejected request due to validation failures",
            "Deposit not allowed",
        )
    } else {
        w.deposits.insert(
            id.clone(),
            Deposit {
                amount,
                token: b.token.clone(),
                wallet: b.wallet_identifier.clone(),
                settled: false,
            },
        );
        ("INITIAL", "PENDING", "")
    };
    if w.lost.0 < sim.config.lose_deposit_answers {
        w.lost.0 += 1;
        return lost_answer();
    }
    let data = json!({
        "amount": amount.to_string(),
        "token": b.token,
        "walletIdentifier": b.wallet_identifier,
        "walletIdentifierType": b.wallet_identifier_type,
        "tenantId": sim.config.tenant_id,
        "rejectionReason": reason,
        "statusStage": stage,
        "status": status,
        "created_at": timestamp(),
        "depositRequestId": id,
    });
    (
        StatusCode::CREATED,
        Json(json!({ "data": data, "message": "Deposit request submitted successfully" })),
    )
        .into_response()
}

async fn confirm(State(sim): State<PartnerSim>, headers: HeaderMap, body: Json<Value>) -> Response {
    if let Some(r) = refusal(&sim, &headers) {
        return r;
    }
    let b = body.0;
    let id = match &b["depositRequestId"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let yes = match b["confirm"].as_str() {
        Some("YES") => true,
        Some("NO") => false,
        _ => {
            return errors(StatusCode::BAD_REQUEST, "catch", "error message");
        }
    };
    let invalidated = || {
        errors(
            StatusCode::BAD_REQUEST,
            "catch",
            "Successfully Invalidated Confirmation Request. No further action possible for the same request.",
        )
    };
    let mut w = sim.world();
    let Some(d) = w.deposits.get(&id).cloned() else {
        return errors(
            StatusCode::BAD_REQUEST,
            "catch",
            "Initiation of deposit request got failed",
        );
    };
    if d.settled || sim.config.invalidate_confirmations {
        if let Some(stored) = w.deposits.get_mut(&id) {
            stored.settled = true;
        }
        return invalidated();
    }
    if yes && (amount_of(&b["amount"]) != Some(d.amount) || b["token"].as_str() != Some(&d.token)) {
        return errors(StatusCode::BAD_REQUEST, "catch", "error message");
    }
    if let Some(stored) = w.deposits.get_mut(&id) {
        stored.settled = true;
    }
    if !yes {
        w.stats.cancellations += 1;
        return invalidated();
    }
    w.stats.confirmations += 1;
    let transaction_id = Uuid::new_v4().to_string();
    w.transfers.push(Transfer {
        trx_id: format!("0x{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
        from: "treasury.partner.ul".into(),
        to: d.wallet.clone(),
        amount: d.amount,
        status: "Completed".into(),
        revert_reason: None,
        memo: Some(id.clone()),
        hidden_for: sim.config.mint_after_reads,
    });
    if w.lost.1 < sim.config.lose_confirmation_answers {
        w.lost.1 += 1;
        return lost_answer();
    }
    let now = timestamp();
    let data = json!({
        "requestId": Uuid::new_v4().to_string(),
        "tenantId": sim.config.tenant_id,
        "amount": number(d.amount),
        "token": d.token,
        "rejectionReason": "",
        "statusStage": "FINAL",
        "status": "COMPLETED",
        "data": {
            "namespace": d.wallet,
            "transactionId": transaction_id,
            "amount": number(d.amount),
            "paymentStatus": "APPROVED",
            "tokenMintStatus": "PENDING",
            "cardTransactionHistory": [
                { "transactionHistoryId": Uuid::new_v4().to_string(), "status": "APPROVED",
                  "description": "token minting status is approved", "createdAt": now },
                { "transactionHistoryId": Uuid::new_v4().to_string(), "status": "DEPOSIT-REQUEST-SUCCESS",
                  "description": "transaction status is deposit-request-success", "createdAt": now },
            ],
        },
    });
    (
        StatusCode::CREATED,
        Json(json!({ "data": data, "message": "Confirmation request submitted successfully" })),
    )
        .into_response()
}

/// Now, as the documents print times (seven fraction digits, an explicit offset).
fn timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f0+00:00")
        .to_string()
}

/// A decimal as a JSON number (the documents' type).
fn number(d: Decimal) -> Value {
    serde_json::from_str(&d.normalize().to_string()).unwrap_or(Value::Null)
}

/// Tokens as 18-decimal base units.
fn base_units(tokens: Decimal) -> String {
    let scaled = tokens * Decimal::from(1_000_000_000_000_000_000u64);
    scaled.trunc().to_string()
}

#[derive(Deserialize)]
struct HistoryQuery {
    memo: Option<String>,
}

async fn history(
    State(sim): State<PartnerSim>,
    headers: HeaderMap,
    Path((identifier, kind)): Path<(String, String)>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    if let Some(r) = refusal(&sim, &headers) {
        return r;
    }
    if kind != "on-chain" && kind != "off-chain" {
        return errors(
            StatusCode::BAD_REQUEST,
            "filterError",
            "type can only be on-chain || off-chain",
        );
    }
    let mut w = sim.world();
    w.stats.history_reads += 1;
    let mut listed = Vec::new();
    for t in w.transfers.iter_mut() {
        if t.from != identifier && t.to != identifier {
            continue;
        }
        if q.memo.is_some() && t.memo != q.memo && !sim.config.history_ignores_memo {
            continue;
        }
        if t.hidden_for > 0 {
            t.hidden_for -= 1;
            continue;
        }
        if kind == "off-chain" {
            continue;
        }
        listed.push(json!({
            "trxId": t.trx_id,
            "blockHash": format!("0x{}", Uuid::new_v4().simple()),
            "blockNumber": "362839",
            "amount": base_units(t.amount),
            "paymentType": if t.to == identifier { "credit" } else { "debit" },
            "from": t.from,
            "to": t.to,
            "status": t.status,
            "timestamp": chrono::Utc::now().timestamp().to_string(),
            "isError": if t.revert_reason.is_some() { "1" } else { "0" },
            "revertReason": t.revert_reason,
        }));
    }
    Json(json!({ "data": listed })).into_response()
}

async fn fiat_transfer(
    State(sim): State<PartnerSim>,
    headers: HeaderMap,
    Path(hash): Path<String>,
    body: Json<Value>,
) -> Response {
    if let Some(r) = refusal(&sim, &headers) {
        return r;
    }
    let b = body.0;
    let redeem = |m: &str| errors(StatusCode::BAD_REQUEST, "redeem", m);
    let Some(fiat) = amount_of(&b["fiatAmount"]).filter(|a| *a > Decimal::ZERO) else {
        return redeem("please enter correct amount");
    };
    if b["tokenSymbol"].as_str() != Some("USBC") {
        return redeem("token symbol is incorrect");
    }
    let reference = b["referenceId"].as_str().unwrap_or_default().to_string();
    let mut w = sim.world();
    let Some(transfer) = w
        .transfers
        .iter()
        .find(|t| t.trx_id.eq_ignore_ascii_case(&hash) && t.status == "Completed")
        .cloned()
    else {
        return redeem("Something went wrong, please try again");
    };
    if reference.is_empty() || b["type"].as_str() != Some("BANK-BOOK") {
        return redeem("Something went wrong, please try again");
    }
    let transaction_id = match w.payouts.get(&reference) {
        Some((h, id)) if h.eq_ignore_ascii_case(&hash) => id.clone(),
        Some(_) => return redeem("Something went wrong, please try again"),
        None => {
            let id = Uuid::new_v4().to_string();
            w.payouts
                .insert(reference.clone(), (hash.clone(), id.clone()));
            w.stats.fiat_transfers += 1;
            id
        }
    };
    Json(json!({
        "data": {
            "transactionId": transaction_id,
            "referenceId": reference,
            "tokenSymbol": "USBC",
            "fiatSymbol": b["fiatSymbol"],
            "fiatAmount": number(fiat),
            "tokenAmount": number(transfer.amount),
            "type": "BANK-BOOK",
        },
        "message": "fiat transaction status updated successfully.",
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewTransfer {
    from: String,
    to: String,
    amount: Value,
    status: Option<String>,
    revert_reason: Option<String>,
}

async fn add_transfer(State(sim): State<PartnerSim>, Json(t): Json<NewTransfer>) -> Response {
    let Some(amount) = amount_of(&t.amount).filter(|a| *a > Decimal::ZERO) else {
        return (StatusCode::BAD_REQUEST, "amount must be a positive number").into_response();
    };
    let status = t.status.unwrap_or_else(|| "Completed".into());
    let trx_id = sim.push_transfer(&t.from, &t.to, amount, &status, t.revert_reason);
    Json(json!({ "trxId": trx_id })).into_response()
}

async fn stats(State(sim): State<PartnerSim>) -> Json<PartnerStats> {
    Json(sim.stats())
}
