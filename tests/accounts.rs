//! Accounts, tokens and roles, through HTTP on every backend.

mod common;

on_both_backends!(
    signup_signs_the_rider_in,
    signup_refuses_bad_input,
    malformed_bodies_are_invalid_requests,
    login_does_not_tell_unknown_email_from_wrong_password,
    tokens_are_checked,
    crews_are_created_by_operators,
    failed_logins_are_rate_limited,
);

mod scenarios {
    use serde_json::json;

    use crate::common::*;

    pub async fn signup_signs_the_rider_in(s: &TestServer) {
        let answer = s
            .post(
                "/v1/auth/signup",
                None,
                json!({"email": "Juliette@Example.com", "password": "correct horse battery", "display_name": "Juliette"}),
            )
            .await;
        let body = answer.expect(201);
        assert_eq!(body["token_type"], "Bearer");
        assert!(body["expires_in"].as_u64().unwrap() > 0);
        let token = body["access_token"].as_str().unwrap();
        let rider_id = body["rider_id"].as_str().unwrap();

        let me = s.get("/v1/me", Some(token)).await;
        let me = me.expect(200);
        assert_eq!(me["rider_id"], rider_id);
        assert_eq!(me["email"], "juliette@example.com");
        assert_eq!(me["display_name"], "Juliette");
        assert_eq!(me["marketing_opt_in"], false, "marketing is opt-in");

        let login = s
            .login("juliette@example.com", "correct horse battery")
            .await;
        let login = login.expect(200);
        assert_eq!(login["role"], "rider");
        assert_eq!(login["token_type"], "Bearer");
        let token = login["access_token"].as_str().unwrap();
        s.get("/v1/me", Some(token)).await.expect(200);

        let opted_in = s
            .post(
                "/v1/auth/signup",
                None,
                json!({"email": "marketing@example.com", "password": "correct horse battery", "marketing_opt_in": true}),
            )
            .await;
        let token = opted_in.expect(201)["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            s.get("/v1/me", Some(&token)).await.expect(200)["marketing_opt_in"],
            true
        );
    }

    pub async fn signup_refuses_bad_input(s: &TestServer) {
        s.signup("taken@example.com").await;
        s.post(
            "/v1/auth/signup",
            None,
            json!({"email": " TAKEN@example.com ", "password": "another good one"}),
        )
        .await
        .expect_problem(409, "email_taken");

        for password in ["short", "password", "aaaaaaaaaaaaaa"] {
            s.post(
                "/v1/auth/signup",
                None,
                json!({"email": "weak@example.com", "password": password}),
            )
            .await
            .expect_problem(422, "weak_password");
        }
        for email in ["not-an-email", "a@b", "two@@example.com", ""] {
            s.post(
                "/v1/auth/signup",
                None,
                json!({"email": email, "password": "correct horse battery"}),
            )
            .await
            .expect_problem(422, "invalid_email");
        }
    }

    pub async fn malformed_bodies_are_invalid_requests(s: &TestServer) {
        s.post(
            "/v1/auth/signup",
            None,
            json!({"email": "a@example.com", "password": "correct horse battery", "admin": true}),
        )
        .await
        .expect_problem(400, "invalid_request");
        s.post(
            "/v1/auth/signup",
            None,
            json!({"email": 42, "password": "x"}),
        )
        .await
        .expect_problem(400, "invalid_request");
        s.post("/v1/auth/login", None, json!({"email": "a@example.com"}))
            .await
            .expect_problem(400, "invalid_request");

        let broken = s
            .http
            .post(s.url("/v1/auth/signup"))
            .header("content-type", "application/json")
            .body("{\"email\": ")
            .send()
            .await
            .unwrap();
        TestServer::answer(broken)
            .await
            .expect_problem(400, "invalid_request");

        let not_json = s
            .http
            .post(s.url("/v1/auth/login"))
            .body("email=a@example.com")
            .send()
            .await
            .unwrap();
        TestServer::answer(not_json)
            .await
            .expect_problem(400, "invalid_request");

        s.get("/v1/no/such/thing", None)
            .await
            .expect_problem(404, "not_found");
    }

    pub async fn login_does_not_tell_unknown_email_from_wrong_password(s: &TestServer) {
        s.signup("known@example.com").await;
        let wrong = s.login("known@example.com", "not the password").await;
        let unknown = s.login("nobody@example.com", "not the password").await;
        wrong.expect_problem(401, "invalid_credentials");
        unknown.expect_problem(401, "invalid_credentials");
        assert_eq!(wrong.body, unknown.body);
    }

    pub async fn tokens_are_checked(s: &TestServer) {
        let (_, rider) = s.signup("tokens@example.com").await;
        let operator = s.operator_token().await;

        s.get("/v1/me", None)
            .await
            .expect_problem(401, "unauthenticated");
        s.get("/v1/me", Some("not-a-jwt"))
            .await
            .expect_problem(401, "unauthenticated");

        // Change one character of the signature.
        let mut tampered = rider.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        s.get("/v1/me", Some(&tampered))
            .await
            .expect_problem(401, "unauthenticated");

        // Claims rewritten to another audience without the key: the signature no longer holds.
        let parts: Vec<&str> = rider.split('.').collect();
        let forged_payload = {
            use base64::Engine;
            let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let mut claims: serde_json::Value =
                serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
            claims["aud"] = json!("scootfleet:operator");
            engine.encode(serde_json::to_vec(&claims).unwrap())
        };
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        s.post(
            "/v1/ops/crews",
            Some(&forged),
            json!({"name": "x", "email": "x@example.com", "password": "correct horse battery"}),
        )
        .await
        .expect_problem(401, "unauthenticated");

        // The right token for the wrong role.
        s.get("/v1/me", Some(&operator))
            .await
            .expect_problem(403, "forbidden");
        s.post(
            "/v1/ops/crews",
            Some(&rider),
            json!({"name": "x", "email": "x@example.com", "password": "correct horse battery"}),
        )
        .await
        .expect_problem(403, "forbidden");

        // Tokens expire.
        s.get("/v1/me", Some(&rider)).await.expect(200);
        s.clock.advance(chrono::Duration::days(2));
        s.get("/v1/me", Some(&rider))
            .await
            .expect_problem(401, "unauthenticated");
    }

    pub async fn crews_are_created_by_operators(s: &TestServer) {
        let operator = s.operator_token().await;
        let created = s
            .post(
                "/v1/ops/crews",
                Some(&operator),
                json!({"name": "Van 7", "email": "van7@example.com", "password": "swap batteries fast"}),
            )
            .await;
        assert!(created.expect(201)["crew_id"].as_str().is_some());
        let login = s.login("van7@example.com", "swap batteries fast").await;
        assert_eq!(login.expect(200)["role"], "crew");
        let crew = login.body["access_token"].as_str().unwrap();
        s.get("/v1/me", Some(crew))
            .await
            .expect_problem(403, "forbidden");

        s.post(
            "/v1/ops/crews",
            Some(&operator),
            json!({"name": "Van 8", "email": "VAN7@example.com", "password": "swap batteries fast"}),
        )
        .await
        .expect_problem(409, "email_taken");
        s.post(
            "/v1/ops/crews",
            None,
            json!({"name": "Van 9", "email": "van9@example.com", "password": "swap batteries fast"}),
        )
        .await
        .expect_problem(401, "unauthenticated");
    }

    pub async fn failed_logins_are_rate_limited(s: &TestServer) {
        s.signup("target@example.com").await;
        for _ in 0..5 {
            s.login("target@example.com", "guess guess guess")
                .await
                .expect_problem(401, "invalid_credentials");
        }
        let blocked = s.login("target@example.com", "correct horse battery").await;
        blocked.expect_problem(429, "too_many_requests");
        let retry_after: u64 = blocked.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after > 0 && retry_after <= 900, "{retry_after}");

        // Other accounts from this address still get in, until the address limit.
        s.signup("bystander@example.com").await;
        s.login("bystander@example.com", "correct horse battery")
            .await
            .expect(200);

        s.clock
            .advance(chrono::Duration::seconds(retry_after as i64));
        s.login("target@example.com", "correct horse battery")
            .await
            .expect(200);

        // Many accounts guessed from one address: the address is blocked too.
        for i in 0..20 {
            let _ = s
                .login(&format!("guess{i}@example.com"), "guess guess guess")
                .await;
        }
        s.login("bystander@example.com", "correct horse battery")
            .await
            .expect_problem(429, "too_many_requests");
    }
}
