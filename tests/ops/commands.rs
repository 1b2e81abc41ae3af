//! `rampd commands show ID`: a command's inbox row (outcome, reason, order) and the
//! rejections that answered it, also for one refused for its envelope (not in the inbox).

use rampd::admin::commands::{CommandsCmd, run};
use rampd_domain::order::OrderState;
use rampd_e2e::{Backend, Stack, create_body};

async fn show(s: &Stack, id: &str, json: bool) -> (bool, String) {
    let mut out = Vec::new();
    let cmd = CommandsCmd::Show {
        id: id.into(),
        tenant: None,
        json,
    };
    let found = run(&s.db, cmd, &mut out).await.unwrap();
    (found, String::from_utf8(out).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looks_up_commands_by_id() {
    let s = Stack::start(Backend::Sqlite).await;
    s.send("onramp.create", &create_body("c-ok", "cmd-ok"))
        .await;
    s.wait_state("c-ok", OrderState::AwaitingPayment).await;
    let mut small = create_body("c-small", "cmd-small");
    small["fiat_amount"] = "1.00".into();
    s.send("onramp.create", &small).await;
    // A wrong Nats-Msg-Id: refused for its envelope, answered but not in the inbox.
    s.send_with_id(
        "onramp.create",
        &create_body("c-env", "cmd-env"),
        "other-id",
        None,
    )
    .await;
    for id in ["cmd-small", "cmd-env"] {
        s.wait_event("rejection", |e| {
            e["type"] == "command.rejected" && e["command_id"] == id
        })
        .await;
    }
    // The outbox row is written before it is published.
    let (found, out) = show(&s, "cmd-ok", false).await;
    assert!(found, "{out}");
    assert!(
        out.starts_with("command cmd-ok onramp.create (tenant acme) accepted at "),
        "{out}"
    );
    assert!(out.contains("(c-ok), now awaiting_payment"), "{out}");

    let (found, out) = show(&s, "cmd-small", true).await;
    assert!(found, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let inbox = v["inbox"].as_array().unwrap();
    assert_eq!(inbox.len(), 1, "{out}");
    assert_eq!(inbox[0]["outcome"], "rejected", "{out}");
    assert!(inbox[0]["reason"].as_str().is_some(), "{out}");
    assert_eq!(v["rejections"][0]["command_id"], "cmd-small", "{out}");

    let (found, out) = show(&s, "cmd-env", false).await;
    assert!(found, "{out}");
    assert!(!out.contains("command cmd-env"), "not in the inbox: {out}");
    assert!(
        out.contains("rejected cmd-env onramp.create (tenant acme)"),
        "{out}"
    );
    assert!(out.contains("msg_id_mismatch"), "{out}");

    let (found, out) = show(&s, "never-sent", false).await;
    assert!(!found);
    assert!(out.starts_with("no command never-sent"), "{out}");
    s.finish().await;
}
