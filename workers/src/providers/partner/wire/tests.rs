//! The bodies here are the examples of provider-docs 002 and 004, as printed there.

use std::str::FromStr;

use super::*;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn err(kind: &str, message: &str) -> ApiError {
    ApiError {
        kind: kind.into(),
        message: message.into(),
    }
}

#[test]
fn errors_come_in_three_shapes_and_all_are_read() {
    let plural = r#"{"errors":[{"type":"catch","message":"error message"},
        {"type":"Transaction error","error":"No address found for namespace john.ul"}]}"#;
    assert_eq!(
        parse_errors(plural),
        vec![
            err("catch", "error message"),
            err(
                "Transaction error",
                "No address found for namespace john.ul"
            )
        ]
    );
    let singular = r#"{"error":{"type":"Internal server error",
        "message":"An unexpected error occurred. Please try again later"}}"#;
    assert_eq!(
        parse_errors(singular),
        vec![err(
            "Internal server error",
            "An unexpected error occurred. Please try again later"
        )]
    );
    let nested = r#"[{"type":[{"type":"Duplicate","message":"Business domain already exists"},
        {"message":"Business user is already registered with provided email id","type":"Duplicate"}]}]"#;
    assert_eq!(
        parse_errors(nested),
        vec![
            err("Duplicate", "Business domain already exists"),
            err(
                "Duplicate",
                "Business user is already registered with provided email id"
            )
        ]
    );
    // An entry with neither message nor error carries nothing to report.
    let filter = r#"{"errors":[{"type":"filterError","tenant_id":"57b9"}]}"#;
    assert_eq!(parse_errors(filter), vec![]);
    assert_eq!(parse_errors("<html>502</html>"), vec![]);
}

#[test]
fn the_documented_deposit_201_is_a_rejection() {
    let body = r#"{"data":{"amount":"25","token":"THIS",
        "walletIdentifier":"digit_testsiveruserdigitte1_ul","walletIdentifierType":"CUSTOM NAMESPACE",
        "tenantId":"4e6cb408-8a22-4edc-ba0f-e0f8071efc64","rejectionReason":"Deposit not allowed",
        "statusStage":"FINAL","status":"Rejected request due to validation failures",
        "created_at":"2023-12-09T10:26:47.0000000+00:00",
        "depositRequestId":"5822e56e-1909-426f-a4be-1d49b15c781c"},
        "message":"Deposit request submitted successfully"}"#;
    assert_eq!(
        parse_deposit(body),
        Ok(Deposit::Rejected {
            status: "Rejected request due to validation failures".into(),
            reason: "Deposit not allowed".into(),
        })
    );
    // A rejection status with an empty reason is still a rejection.
    let no_reason = r#"{"data":{"rejectionReason":"","status":"Rejected request due to validation failures",
        "depositRequestId":"x","amount":1}}"#;
    assert!(matches!(
        parse_deposit(no_reason),
        Ok(Deposit::Rejected { reason, .. }) if reason == "Rejected request due to validation failures"
    ));
}

#[test]
fn an_accepted_deposit_keeps_its_id_and_amount_whatever_their_json_types() {
    for (id, amount) in [
        (r#""5822e56e-1909-426f-a4be-1d49b15c781c""#, r#""25""#),
        ("5822", "25"),
        (r#""5822""#, "25.0"),
    ] {
        let body = format!(
            r#"{{"data":{{"depositRequestId":{id},"amount":{amount},"rejectionReason":"","statusStage":"INITIAL","status":"PENDING"}}}}"#
        );
        let Ok(Deposit::Accepted {
            deposit_request_id,
            amount,
        }) = parse_deposit(&body)
        else {
            panic!("{body}")
        };
        assert_eq!(amount, d("25"), "{body}");
        assert!(deposit_request_id.starts_with("5822"), "{body}");
    }
    assert_eq!(
        parse_deposit(r#"{"data":{"amount":"25"}}"#),
        Err(WireError::Missing("depositRequestId"))
    );
    assert_eq!(
        parse_deposit(r#"{"data":{"depositRequestId":"a","amount":"twenty"}}"#),
        Err(WireError::BadAmount {
            field: "amount",
            value: "twenty".into()
        })
    );
    assert_eq!(parse_deposit("not json"), Err(WireError::NotJson));
    assert_eq!(
        parse_deposit(r#"{"message":"x"}"#),
        Err(WireError::Missing("data"))
    );
}

const CONFIRMED: &str = r#"{"data":{"requestId":"facc46b7-9988-482c-bf42-7a2cf8f97f72",
    "tenantId":"4e6cb408-8a22-4edc-ba0f-e0f8071efc64","amount":35,"token":"THIS","rejectionReason":"",
    "statusStage":"FINAL","status":"COMPLETED","data":{"namespace":"digit.thirusilver11s.ul",
    "transactionId":"2bfd5f84-5ea1-4a05-b7f6-a3ebb104b9ff","amount":35,"paymentStatus":"APPROVED",
    "tokenMintStatus":"PENDING","cardTransactionHistory":[{"transactionHistoryId":"11bc5cd3-e515-4f8d-ba63-d1982d3ff946",
    "status":"APPROVED","description":"token minting status is approved","createdAt":"2023-12-21T11:31:20.0000000+00:00"}]}},
    "message":"Confirmation request submitted successfully"}"#;

#[test]
fn the_documented_confirmation_is_approved_with_the_mint_pending() {
    assert_eq!(
        parse_confirmation(201, CONFIRMED),
        Some(Ok(Confirmation::Confirmed {
            request_id: "facc46b7-9988-482c-bf42-7a2cf8f97f72".into(),
            transaction_id: Some("2bfd5f84-5ea1-4a05-b7f6-a3ebb104b9ff".into()),
            payment_status: Some("APPROVED".into()),
            token_mint_status: Some("PENDING".into()),
            amount: d("35"),
        }))
    );
    let rejected = CONFIRMED.replace(r#""rejectionReason":"""#, r#""rejectionReason":"limit""#);
    assert!(matches!(
        parse_confirmation(201, &rejected),
        Some(Ok(Confirmation::Rejected { reason, .. })) if reason == "limit"
    ));
    let other = CONFIRMED.replace(r#""status":"COMPLETED""#, r#""status":"DECLINED""#);
    assert!(matches!(
        parse_confirmation(201, &other),
        Some(Ok(Confirmation::Rejected { status, .. })) if status == "DECLINED"
    ));
}

#[test]
fn the_invalidated_400_is_terminal_and_other_errors_are_left_to_the_caller() {
    let invalidated = r#"{"errors":[{"type":"catch","message":"Successfully Invalidated Confirmation Request. No further action possible for the same request."}]}"#;
    assert_eq!(
        parse_confirmation(400, invalidated),
        Some(Ok(Confirmation::Invalidated))
    );
    let failed =
        r#"{"errors":[{"type":"catch","message":"Initiation of deposit request got failed"}]}"#;
    assert_eq!(parse_confirmation(400, failed), None);
    assert_eq!(parse_confirmation(500, invalidated), None);
    assert_eq!(parse_confirmation(503, "upstream"), None);
}

#[test]
fn the_fiat_transfer_200_is_recorded_by_its_transaction_id() {
    let body = r#"{"data":{"transactionId":"5ea3eb51-8a02-415d-bf74-add22ed74803","referenceId":"5",
        "tokenSymbol":"USBC","fiatSymbol":"USD","fiatAmount":5,"tokenAmount":1,"type":"BANK-BOOK"},
        "message":"fiat transaction status updated successfully."}"#;
    assert_eq!(
        parse_fiat_transfer(body),
        Ok(FiatTransfer {
            transaction_id: "5ea3eb51-8a02-415d-bf74-add22ed74803".into(),
            reference_id: Some("5".into()),
            fiat_amount: d("5"),
            token_amount: Some(d("1")),
        })
    );
    assert_eq!(
        parse_fiat_transfer(r#"{"data":{"fiatAmount":"5.10"}}"#),
        Err(WireError::Missing("transactionId"))
    );
}

#[test]
fn history_amounts_are_18_decimal_base_units() {
    let body = r#"{"data":[
      {"trxId":"0xca6ede3c859f76289f2da6cdf5774645eb155795b685c20b28ee9a4e74445d82","blockNumber":"362839",
       "amount":"2000000000000000000","paymentType":"credit","from":"itech.sheetalus.ul","to":"itech.punitus.ul",
       "status":"Completed","timestamp":"1672925586","isError":"0","revertReason":null},
      {"trxId":"0xc2c4","amount":"500000000000000000000","paymentType":"credit","from":"a","to":"b",
       "status":"Completed","isError":"0","revertReason":null},
      {"trxId":"0xdd","amount":"1","to":"b","status":"Completed","isError":"1","revertReason":"out of gas"}
    ]}"#;
    let h = parse_history(body).unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h[0].amount, d("2"));
    assert_eq!(h[0].to, "itech.punitus.ul");
    assert!(!h[0].is_error && h[0].revert_reason.is_none());
    assert_eq!(h[1].amount, d("500"));
    assert_eq!(h[2].amount, d("0.000000000000000001"));
    assert!(h[2].is_error);
    assert_eq!(h[2].revert_reason.as_deref(), Some("out of gas"));
    assert_eq!(parse_history(r#"{"data":[]}"#), Ok(vec![]));
}

#[test]
fn a_history_amount_that_is_not_base_units_is_refused() {
    for amount in [r#""2.5""#, r#""-1""#, r#""""#, "2.5", r#""1e18""#] {
        let body = format!(r#"{{"data":[{{"trxId":"0x1","amount":{amount}}}]}}"#);
        assert!(
            matches!(parse_history(&body), Err(WireError::BadAmount { .. })),
            "{amount}"
        );
    }
    assert_eq!(
        parse_history(r#"{"data":[{"amount":"1"}]}"#),
        Err(WireError::Missing("trxId"))
    );
    assert_eq!(
        parse_history(r#"{"data":{"trxId":"0x1"}}"#),
        Err(WireError::Missing("data[]"))
    );
    // More than a decimal holds is refused, not wrapped.
    let huge = format!(
        r#"{{"data":[{{"trxId":"0x1","amount":"{}"}}]}}"#,
        "9".repeat(40)
    );
    assert!(matches!(
        parse_history(&huge),
        Err(WireError::BadAmount { .. })
    ));
}
