//! Wallets, packs, top-ups, idempotency keys and the ledger, through HTTP on every backend,
//! plus ride charges through the API the rides domain calls.

mod common;

on_both_backends!(
    a_new_rider_has_an_empty_wallet_and_a_trial,
    packs_are_listed_publicly,
    top_ups_go_through_the_payment_provider,
    top_up_amounts_are_checked,
    packs_are_bought_from_the_wallet,
    a_replayed_top_up_moves_money_once,
    a_replayed_pack_purchase_moves_money_once,
    a_key_reused_with_another_body_is_refused,
    concurrent_duplicates_move_money_once,
    concurrent_purchases_never_overdraw,
    rides_are_paid_by_trial_then_packs_then_wallet,
    a_ride_charge_commits_with_the_callers_transaction,
    the_ledger_sums_to_zero,
    credits_and_refunds_make_it_right,
    a_stale_claim_is_taken_over,
    old_keys_are_purged,
    billing_routes_are_documented,
);

/// The tariff is the operator's to set: another catalogue, no trial, a higher minimum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_tariff_is_served() {
    for backend in common::backends() {
        let s = common::TestServer::start_with(backend, |config| {
            config.packs = "city_30:30:7.50".parse().expect("catalogue");
            config.free_trial_minutes = 0;
            config.max_top_up = "50.00".parse().expect("amount");
        })
        .await;
        let packs = s.get("/v1/packs", None).await;
        assert_eq!(
            packs.expect(200)["packs"],
            serde_json::json!([{"pack_id": "city_30", "minutes": 30, "price": "7.50", "currency": "EUR"}])
        );
        let (_, token) = s.signup("configured@example.com").await;
        let wallet = s.wallet(&token).await;
        assert_eq!(wallet["free_trial_available"], false);
        assert_eq!(wallet["free_trial_minutes"], 0);
        s.post(
            "/v1/me/wallet/top-ups",
            Some(&token),
            serde_json::json!({"amount": "50.01", "payment_token": "tok_test_ok"}),
        )
        .await
        .expect_problem(400, "invalid_request");
        s.top_up(&token, "50.00").await;
        s.post(
            "/v1/me/packs",
            Some(&token),
            serde_json::json!({"pack_id": "pack_50"}),
        )
        .await
        .expect_problem(404, "pack_not_found");
        s.stop().await;
    }
}

mod scenarios {
    use futures_util::future::join_all;
    use scootfleet::billing::{charge, store, Conn, RideCharge};
    use serde_json::json;

    use crate::common::*;

    const TOP_UP: &str = "/v1/me/wallet/top-ups";
    const PACKS: &str = "/v1/me/packs";

    pub async fn a_new_rider_has_an_empty_wallet_and_a_trial(s: &TestServer) {
        let (_, token) = s.signup("new@example.com").await;
        let wallet = s.wallet(&token).await;
        assert_eq!(wallet["balance"], "0.00");
        assert_eq!(wallet["currency"], "EUR");
        assert_eq!(wallet["pack_minutes"], 0);
        assert_eq!(wallet["free_trial_available"], true);
        assert_eq!(wallet["free_trial_minutes"], 15);
        s.get("/v1/me/wallet", None)
            .await
            .expect_problem(401, "unauthenticated");
        let operator = s.operator_token().await;
        s.get("/v1/me/wallet", Some(&operator))
            .await
            .expect_problem(403, "forbidden");
    }

    pub async fn packs_are_listed_publicly(s: &TestServer) {
        let answer = s.get("/v1/packs", None).await;
        let packs = answer.expect(200)["packs"].as_array().unwrap().clone();
        assert_eq!(packs.len(), 3);
        assert_eq!(
            packs[0],
            json!({"pack_id": "pack_50", "minutes": 50, "price": "12.00", "currency": "EUR"})
        );
        for pack in &packs {
            let minutes = pack["minutes"].as_f64().unwrap();
            let price: f64 = pack["price"].as_str().unwrap().parse().unwrap();
            assert!(
                price / minutes < 0.28,
                "a pack is cheaper than riding: {pack}"
            );
        }
    }

    pub async fn top_ups_go_through_the_payment_provider(s: &TestServer) {
        let (_, token) = s.signup("payer@example.com").await;
        let answer = s
            .post(
                TOP_UP,
                Some(&token),
                json!({"amount": "20", "payment_token": "tok_test_ok"}),
            )
            .await;
        let body = answer.expect(201);
        assert_eq!(body["balance"], "20.00");
        assert_eq!(body["amount"], "20.00");
        assert_eq!(body["currency"], "EUR");
        assert!(body["top_up_id"].as_str().is_some());

        s.post(
            TOP_UP,
            Some(&token),
            json!({"amount": "10.00", "payment_token": "tok_test_declined"}),
        )
        .await
        .expect_problem(402, "payment_declined");
        s.post(
            TOP_UP,
            Some(&token),
            json!({"amount": "10.00", "payment_token": "tok_made_up"}),
        )
        .await
        .expect_problem(402, "payment_declined");
        assert_eq!(s.wallet(&token).await["balance"], "20.00");

        s.top_up(&token, "0.50").await;
        assert_eq!(s.wallet(&token).await["balance"], "20.50");
        s.post(
            TOP_UP,
            None,
            json!({"amount": "1.00", "payment_token": "tok_test_ok"}),
        )
        .await
        .expect_problem(401, "unauthenticated");
    }

    pub async fn top_up_amounts_are_checked(s: &TestServer) {
        let (_, token) = s.signup("careful@example.com").await;
        for amount in [
            json!("0"),
            json!("0.00"),
            json!("-5.00"),
            json!("10.001"),
            json!("500.01"),
            json!("1e2"),
            json!("ten"),
            json!(10),
            json!(null),
        ] {
            s.post(
                TOP_UP,
                Some(&token),
                json!({"amount": amount, "payment_token": "tok_test_ok"}),
            )
            .await
            .expect_problem(400, "invalid_request");
        }
        s.post(TOP_UP, Some(&token), json!({"amount": "5.00"}))
            .await
            .expect_problem(400, "invalid_request");
        s.post(
            TOP_UP,
            Some(&token),
            json!({"amount": "5.00", "payment_token": "tok_test_ok", "tip": "1.00"}),
        )
        .await
        .expect_problem(400, "invalid_request");
        assert_eq!(s.wallet(&token).await["balance"], "0.00");
        assert_eq!(s.top_up(&token, "500.00").await["balance"], "500.00");
    }

    pub async fn packs_are_bought_from_the_wallet(s: &TestServer) {
        let (_, token) = s.signup("packs@example.com").await;
        s.post(PACKS, Some(&token), json!({"pack_id": "pack_50"}))
            .await
            .expect_problem(402, "insufficient_funds");
        s.post(PACKS, Some(&token), json!({"pack_id": "pack_999"}))
            .await
            .expect_problem(404, "pack_not_found");
        s.post(PACKS, Some(&token), json!({}))
            .await
            .expect_problem(400, "invalid_request");

        s.top_up(&token, "15.00").await;
        let answer = s
            .post(PACKS, Some(&token), json!({"pack_id": "pack_50"}))
            .await;
        let body = answer.expect(201);
        assert_eq!(body["pack_id"], "pack_50");
        assert_eq!(body["minutes"], 50);
        assert_eq!(body["price"], "12.00");
        assert_eq!(body["wallet"]["balance"], "3.00");
        assert_eq!(body["wallet"]["pack_minutes"], 50);

        s.post(PACKS, Some(&token), json!({"pack_id": "pack_50"}))
            .await
            .expect_problem(402, "insufficient_funds");
        let wallet = s.wallet(&token).await;
        assert_eq!(wallet["balance"], "3.00");
        assert_eq!(wallet["pack_minutes"], 50);
        assert_eq!(wallet["free_trial_available"], true, "packs keep the trial");
    }

    pub async fn a_replayed_top_up_moves_money_once(s: &TestServer) {
        let (_, token) = s.signup("replay@example.com").await;
        let body = json!({"amount": "10.00", "payment_token": "tok_test_ok"});
        let first = s
            .post_with_key(TOP_UP, &token, "topup-1", body.clone())
            .await;
        first.expect(201);
        assert!(first.headers.get("idempotent-replayed").is_none());
        let again = s
            .post_with_key(TOP_UP, &token, "topup-1", body.clone())
            .await;
        again.expect(201);
        assert_eq!(again.body, first.body, "the first answer, again");
        assert_eq!(
            again
                .headers
                .get("idempotent-replayed")
                .map(|v| v.to_str().unwrap()),
            Some("true")
        );
        assert_eq!(s.wallet(&token).await["balance"], "10.00");

        // Another key is another top-up; the same key of another rider is theirs alone.
        s.post_with_key(TOP_UP, &token, "topup-2", body.clone())
            .await
            .expect(201);
        assert_eq!(s.wallet(&token).await["balance"], "20.00");
        let (_, other) = s.signup("other@example.com").await;
        s.post_with_key(TOP_UP, &other, "topup-1", body.clone())
            .await
            .expect(201);
        assert_eq!(s.wallet(&other).await["balance"], "10.00");

        // A declined payment is answered the same way when replayed.
        let declined = json!({"amount": "10.00", "payment_token": "tok_test_declined"});
        s.post_with_key(TOP_UP, &token, "topup-3", declined.clone())
            .await
            .expect_problem(402, "payment_declined");
        let replayed = s.post_with_key(TOP_UP, &token, "topup-3", declined).await;
        replayed.expect_problem(402, "payment_declined");
        assert_eq!(s.wallet(&token).await["balance"], "20.00");

        s.post_with_key(TOP_UP, &token, &"k".repeat(256), body)
            .await
            .expect_problem(400, "invalid_request");
    }

    pub async fn a_replayed_pack_purchase_moves_money_once(s: &TestServer) {
        let (_, token) = s.signup("replay-pack@example.com").await;
        s.top_up(&token, "30.00").await;
        let body = json!({"pack_id": "pack_100"});
        let first = s.post_with_key(PACKS, &token, "buy-1", body.clone()).await;
        first.expect(201);
        let again = s.post_with_key(PACKS, &token, "buy-1", body).await;
        again.expect(201);
        assert_eq!(again.body, first.body);
        let wallet = s.wallet(&token).await;
        assert_eq!(wallet["balance"], "8.00");
        assert_eq!(wallet["pack_minutes"], 100);
    }

    pub async fn a_key_reused_with_another_body_is_refused(s: &TestServer) {
        let (_, token) = s.signup("reuse@example.com").await;
        s.post_with_key(
            TOP_UP,
            &token,
            "same-key",
            json!({"amount": "10.00", "payment_token": "tok_test_ok"}),
        )
        .await
        .expect(201);
        s.post_with_key(
            TOP_UP,
            &token,
            "same-key",
            json!({"amount": "20.00", "payment_token": "tok_test_ok"}),
        )
        .await
        .expect_problem(422, "idempotency_key_reused");
        s.post_with_key(PACKS, &token, "same-key", json!({"pack_id": "pack_50"}))
            .await
            .expect_problem(422, "idempotency_key_reused");
        let wallet = s.wallet(&token).await;
        assert_eq!(wallet["balance"], "10.00");
        assert_eq!(wallet["pack_minutes"], 0);
    }

    pub async fn concurrent_duplicates_move_money_once(s: &TestServer) {
        let (_, token) = s.signup("racer@example.com").await;
        let body = json!({"amount": "7.00", "payment_token": "tok_test_ok"});
        let calls = (0..12).map(|_| s.post_with_key(TOP_UP, &token, "race", body.clone()));
        let answers = join_all(calls).await;
        let created: Vec<_> = answers.iter().filter(|a| a.status == 201).collect();
        assert!(!created.is_empty());
        for answer in &answers {
            if answer.status != 201 {
                answer.expect_problem(409, "idempotency_key_in_progress");
            }
        }
        for answer in &created {
            assert_eq!(answer.body, created[0].body, "every 201 is the same answer");
        }
        assert_eq!(s.wallet(&token).await["balance"], "7.00");
    }

    pub async fn concurrent_purchases_never_overdraw(s: &TestServer) {
        let (_, token) = s.signup("spender@example.com").await;
        s.top_up(&token, "24.00").await;
        let calls = (0..6).map(|_| s.post(PACKS, Some(&token), json!({"pack_id": "pack_50"})));
        let answers = join_all(calls).await;
        let bought = answers.iter().filter(|a| a.status == 201).count();
        for answer in answers.iter().filter(|a| a.status != 201) {
            answer.expect_problem(402, "insufficient_funds");
        }
        assert_eq!(bought, 2);
        let wallet = s.wallet(&token).await;
        assert_eq!(wallet["balance"], "0.00");
        assert_eq!(wallet["pack_minutes"], 100);
    }

    /// Charges a ride the way the rides domain does: inside its own transaction.
    async fn charge(
        s: &TestServer,
        rider_id: &str,
        ride_id: &str,
        duration_s: i64,
    ) -> store::ChargedRide {
        let db = s.open_db().await;
        let tariff = s.default_tariff();
        let ride = RideCharge {
            rider_id,
            ride_id,
            duration_s,
            rate_per_minute: tariff.rate_per_minute,
            vat_rate: tariff.vat_rate,
            free_trial_minutes: tariff.free_trial_minutes,
            at: scootfleet::clock::Clock::now(s.clock.as_ref()),
        };
        let charged = scootfleet::db_run!(&db, |pool| {
            let mut tx = pool.begin().await.expect("begin");
            let charged = charge::charge_ride(Conn::from(&mut *tx), &tariff, &ride)
                .await
                .expect("charge");
            tx.commit().await.expect("commit");
            charged
        });
        db.close().await;
        charged
    }

    async fn may_unlock(s: &TestServer, rider_id: &str) -> bool {
        let db = s.open_db().await;
        let tariff = s.default_tariff();
        let wallet = store::wallet(&db, &tariff, rider_id).await.expect("wallet");
        db.close().await;
        wallet.can_unlock(&tariff).is_ok()
    }

    pub async fn rides_are_paid_by_trial_then_packs_then_wallet(s: &TestServer) {
        let (rider, token) = s.signup("rider@example.com").await;
        assert!(may_unlock(s, &rider).await, "the trial is enough to ride");
        s.top_up(&token, "2.00").await;

        // First ride, 20 minutes: 15 free, 5 from the wallet.
        let first = charge(s, &rider, "ride_1", 20 * 60).await;
        let b = first.breakdown;
        assert_eq!(b.billed_minutes, 20);
        assert_eq!(b.amount.to_string(), "5.60");
        assert_eq!((b.free_trial_minutes, b.pack_minutes), (15, 0));
        assert_eq!(b.wallet_amount.to_string(), "1.40");
        assert_eq!(first.vat.to_string(), "0.93");
        let wallet = s.wallet(&token).await;
        assert_eq!(wallet["balance"], "0.60");
        assert_eq!(wallet["free_trial_available"], false);
        assert!(
            !may_unlock(s, &rider).await,
            "0.60 is below the unlock minimum"
        );

        // Charged once: a second call answers the first charge and moves nothing.
        let again = charge(s, &rider, "ride_1", 20 * 60).await;
        assert_eq!(again, first);
        assert_eq!(s.wallet(&token).await["balance"], "0.60");

        s.top_up(&token, "12.00").await;
        s.post(PACKS, Some(&token), json!({"pack_id": "pack_50"}))
            .await
            .expect(201);
        assert!(may_unlock(s, &rider).await);

        // 61 seconds: two started minutes, from the pack.
        let second = charge(s, &rider, "ride_2", 61).await.breakdown;
        assert_eq!((second.billed_minutes, second.free_trial_minutes), (2, 0));
        assert_eq!(second.pack_minutes, 2);
        assert_eq!(second.wallet_amount.to_string(), "0.00");
        assert_eq!(s.wallet(&token).await["pack_minutes"], 48);

        // An hour: the 48 pack minutes, then 12 × 0.28 from a wallet of 0.60 — a debt.
        let third = charge(s, &rider, "ride_3", 3600).await.breakdown;
        assert_eq!(third.pack_minutes, 48);
        assert_eq!(third.wallet_amount.to_string(), "3.36");
        assert_eq!(third.balance_after.to_string(), "-2.76");
        let wallet = s.wallet(&token).await;
        assert_eq!(wallet["balance"], "-2.76");
        assert_eq!(wallet["pack_minutes"], 0);
        assert!(
            !may_unlock(s, &rider).await,
            "a debt blocks the next unlock"
        );
        s.post(PACKS, Some(&token), json!({"pack_id": "pack_50"}))
            .await
            .expect_problem(402, "insufficient_funds");

        s.top_up(&token, "3.76").await;
        assert_eq!(s.wallet(&token).await["balance"], "1.00");
        assert!(may_unlock(s, &rider).await, "debt paid, minimum reached");

        // A 0 s ride still bills one minute.
        let blink = charge(s, &rider, "ride_4", 0).await.breakdown;
        assert_eq!(
            (blink.billed_minutes, blink.amount.to_string()),
            (1, "0.28".to_owned())
        );

        let db = s.open_db().await;
        let stored = store::charged_ride(&db, "ride_1").await.unwrap().unwrap();
        assert_eq!(stored, first, "the charge reads back for the receipt");
        assert!(scootfleet::billing::ledger::ledger_sums_to_zero(&db)
            .await
            .unwrap());
        db.close().await;
    }

    pub async fn a_ride_charge_commits_with_the_callers_transaction(s: &TestServer) {
        let (rider, token) = s.signup("rollback@example.com").await;
        s.top_up(&token, "5.00").await;
        let db = s.open_db().await;
        let tariff = s.default_tariff();
        let ride = RideCharge {
            rider_id: &rider,
            ride_id: "ride_rolled_back",
            duration_s: 30 * 60,
            rate_per_minute: tariff.rate_per_minute,
            vat_rate: tariff.vat_rate,
            free_trial_minutes: tariff.free_trial_minutes,
            at: scootfleet::clock::from_millis(0),
        };
        scootfleet::db_run!(&db, |pool| {
            let mut tx = pool.begin().await.expect("begin");
            charge::charge_ride(Conn::from(&mut *tx), &tariff, &ride)
                .await
                .expect("charge");
            tx.rollback().await.expect("rollback");
        });
        let wallet = s.wallet(&token).await;
        assert_eq!(
            wallet["balance"], "5.00",
            "nothing charged for a ride that never ended"
        );
        assert_eq!(
            wallet["free_trial_available"], true,
            "the trial is still there"
        );
        assert!(store::charged_ride(&db, "ride_rolled_back")
            .await
            .unwrap()
            .is_none());
        db.close().await;
    }

    pub async fn the_ledger_sums_to_zero(s: &TestServer) {
        let (rider, token) = s.signup("audit@example.com").await;
        let (_, other) = s.signup("audit2@example.com").await;
        s.top_up(&token, "50.00").await;
        s.top_up(&other, "12.34").await;
        s.post(PACKS, Some(&token), json!({"pack_id": "pack_100"}))
            .await
            .expect(201);
        s.post(PACKS, Some(&other), json!({"pack_id": "pack_50"}))
            .await
            .expect(201);
        charge(s, &rider, "ride_a", 17 * 60 + 5).await;
        charge(s, &rider, "ride_b", 200 * 60).await;

        let db = s.open_db().await;
        let audit = scootfleet::billing::ledger::audit(&db).await.unwrap();
        assert!(audit.is_sound(), "{audit:?}");
        assert_eq!(
            audit.transactions, 5,
            "2 top-ups, 2 packs, 1 ride paid from the wallet"
        );
        assert_eq!(audit.entries, 10);
        assert!(scootfleet::billing::ledger::ledger_sums_to_zero(&db)
            .await
            .unwrap());
        db.close().await;
        // 50 - 22 (pack); ride_a: 18 minutes, 15 free and 3 from the pack; ride_b: the 97
        // pack minutes left, then 103 × 0.28 = 28.84 from a wallet of 28.00.
        assert_eq!(s.wallet(&token).await["balance"], "-0.84");
    }

    pub async fn credits_and_refunds_make_it_right(s: &TestServer) {
        use scootfleet::billing::adjust::{credit_wallet, refund_ride, Credit};
        let (rider, token) = s.signup("wronged@example.com").await;
        s.top_up(&token, "22.00").await;
        s.post(PACKS, Some(&token), json!({"pack_id": "pack_100"}))
            .await
            .expect(201);
        // 15 free, 100 from the pack, 5 × 0.28 = 1.40 from an empty wallet: a debt.
        charge(s, &rider, "ride_wrong", 120 * 60).await;
        assert_eq!(s.wallet(&token).await["balance"], "-1.40");

        let db = s.open_db().await;
        let tariff = s.default_tariff();
        let now = scootfleet::clock::Clock::now(s.clock.as_ref());
        for _ in 0..2 {
            let refund = scootfleet::db_run!(&db, |pool| {
                let mut tx = pool.begin().await.expect("begin");
                let refund = refund_ride(Conn::from(&mut *tx), &tariff, "ride_wrong", now)
                    .await
                    .expect("refund")
                    .expect("the ride was charged");
                tx.commit().await.expect("commit");
                refund
            });
            assert_eq!(refund.wallet_amount.to_string(), "1.40");
            assert_eq!(refund.pack_minutes, 100);
        }
        let wallet = s.wallet(&token).await;
        assert_eq!(wallet["balance"], "0.00", "refunded once");
        assert_eq!(wallet["pack_minutes"], 100);
        assert_eq!(wallet["free_trial_available"], false);

        let credit = Credit {
            rider_id: &rider,
            amount: "2.50".parse().unwrap(),
            reference: "complaint_1",
            at: now,
        };
        for _ in 0..2 {
            scootfleet::db_run!(&db, |pool| {
                let mut tx = pool.begin().await.expect("begin");
                credit_wallet(Conn::from(&mut *tx), &tariff, &credit)
                    .await
                    .expect("credit");
                tx.commit().await.expect("commit");
            });
        }
        assert_eq!(s.wallet(&token).await["balance"], "2.50", "credited once");
        let never = scootfleet::db_run!(&db, |pool| {
            let mut conn = pool.acquire().await.expect("connection");
            refund_ride(Conn::from(&mut *conn), &tariff, "ride_never", now)
                .await
                .expect("refund")
        });
        assert!(never.is_none());
        assert!(scootfleet::billing::ledger::ledger_sums_to_zero(&db)
            .await
            .unwrap());
        db.close().await;
    }

    async fn insert_claim(
        s: &TestServer,
        rider: &str,
        key: &str,
        body: &serde_json::Value,
        age: chrono::Duration,
        answered: bool,
    ) {
        let db = s.open_db().await;
        let fingerprint = scootfleet::idempotency::fingerprint("POST", TOP_UP, body);
        let created = scootfleet::clock::Clock::now(s.clock.as_ref()) - age;
        let (status, text) = if answered {
            (Some(201_i64), Some("{}"))
        } else {
            (None, None)
        };
        scootfleet::db_run!(&db, |pool| {
            sqlx::query(
            "insert into idempotency_keys (account_id, key, fingerprint, status_code, body, created_at_ms) \
             values ($1, $2, $3, $4, $5, $6)"
        )
        .bind(rider)
        .bind(key)
        .bind(&fingerprint)
        .bind(status)
        .bind(text)
        .bind(created.timestamp_millis())
        .execute(pool)
        .await
        .map(|_| ())
        .expect("insert claim")
        });
        db.close().await;
    }

    pub async fn a_stale_claim_is_taken_over(s: &TestServer) {
        let (rider, token) = s.signup("stuck@example.com").await;
        let body = json!({"amount": "10.00", "payment_token": "tok_test_ok"});
        // A server stopped after claiming these keys and before answering.
        insert_claim(
            s,
            &rider,
            "stuck",
            &body,
            chrono::Duration::minutes(5),
            false,
        )
        .await;
        insert_claim(
            s,
            &rider,
            "running",
            &body,
            chrono::Duration::seconds(1),
            false,
        )
        .await;

        s.post_with_key(TOP_UP, &token, "stuck", body.clone())
            .await
            .expect(201);
        let replay = s.post_with_key(TOP_UP, &token, "stuck", body.clone()).await;
        replay.expect(201);
        assert!(replay.headers.get("idempotent-replayed").is_some());
        assert_eq!(s.wallet(&token).await["balance"], "10.00");

        // A claim still running is not taken over; another body is refused at once.
        s.post_with_key(
            TOP_UP,
            &token,
            "running",
            json!({"amount": "11.00", "payment_token": "tok_test_ok"}),
        )
        .await
        .expect_problem(422, "idempotency_key_reused");
    }

    pub async fn old_keys_are_purged(s: &TestServer) {
        let (rider, token) = s.signup("old@example.com").await;
        let body = json!({"amount": "10.00", "payment_token": "tok_test_ok"});
        insert_claim(s, &rider, "old", &body, chrono::Duration::hours(25), true).await;
        insert_claim(
            s,
            &rider,
            "recent",
            &body,
            chrono::Duration::hours(23),
            true,
        )
        .await;
        let db = s.open_db().await;
        let now = scootfleet::clock::Clock::now(s.clock.as_ref());
        assert_eq!(scootfleet::idempotency::purge(&db, now).await.unwrap(), 1);
        db.close().await;
        let other = json!({"amount": "3.00", "payment_token": "tok_test_ok"});
        s.post_with_key(TOP_UP, &token, "old", other.clone())
            .await
            .expect(201);
        s.post_with_key(TOP_UP, &token, "recent", other)
            .await
            .expect_problem(422, "idempotency_key_reused");
        assert_eq!(s.wallet(&token).await["balance"], "3.00");
    }

    pub async fn billing_routes_are_documented(s: &TestServer) {
        let doc = s.get("/openapi.json", None).await;
        let paths = &doc.expect(200)["paths"];
        for (path, method) in [
            ("/v1/me/wallet", "get"),
            ("/v1/packs", "get"),
            ("/v1/me/packs", "post"),
            ("/v1/me/wallet/top-ups", "post"),
        ] {
            assert!(
                paths[path][method].is_object(),
                "{method} {path} is missing"
            );
        }
    }
}
