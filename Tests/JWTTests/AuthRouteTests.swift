import XCTest
@testable import Records
@testable import JWT
@testable import VerifyJWTTool

/// The auth route (forward-auth): the gate's own decision, answered instead of passed on.
extension GateTests {
    func authRequest(method: String = "GET", path: String = "/auth", headers: [(String, String)]) -> Record {
        var r = request(path: path, route: "auth", headers: headers)
        r.object["method"] = .string(method)
        return r
    }

    /// The same record as a line read by FilterLoop, so that the gate reads its headers as
    /// the line's bytes (the path http-decode's records take).
    func asLine(_ record: Record) -> Record {
        let parsed = try! Record.parse(record.text)
        XCTAssertNotNil(parsed.rawHeaders(), "the raw path must be taken")
        return parsed
    }

    func testAuthRouteAnswersAValidToken200WithTheIdentityInTheResponseHeaders() {
        var settings = GateSettings()
        settings.claimHeaders = [("email", "x-authenticated-email"), ("missing", "x-authenticated-missing")]
        let record = authRequest(method: "POST", headers: [("host", "h"), ("authorization", "Bearer " + validToken)])
        for input in [record, asLine(record)] {
            let out = run(gate(settings), input)
            XCTAssertEqual(out.status, 200)
            XCTAssertEqual(out.headers, [Header("cache-control", "no-store"),
                                         Header("x-authenticated-uid", "user-1"), Header("x-authenticated-email", "u@example.com"),
                                         Header("x-authenticated-missing", "")], "a claim the token lacks is there, empty")
            XCTAssertEqual(out.body, [], "no body: a proxy that drops it unread would not reuse the connection")
            XCTAssertEqual(out.annotation("auth"), .object(JSONObject([("uid", "user-1")])))
            XCTAssertEqual(out.object["method"], "POST", "http-encode needs the method (no body for HEAD)")
            XCTAssertEqual(out.id, "7")
            XCTAssertFalse(out.text.contains(validToken.prefix(30)), "the token is never echoed")
        }
    }

    func testAuthRouteRejectsExactlyAsAProtectedRouteDoes() {
        let expired = Mint.token(header: #"{"alg":"RS256","kid":"rsa-1"}"#, payload: Mint.claims(["exp": "\(Mint.now - 3600)"]))
        let cases: [[(String, String)]] = [
            [("host", "h")],
            [("authorization", "Basic dTpw")],
            [("authorization", "Bearer " + expired)],
            [("authorization", "Bearer a.b.c")],
            [("authorization", "Bearer " + validToken), ("authorization", "Bearer " + validToken)],
        ]
        var settings = GateSettings()
        settings.auditFailures = true
        for headers in cases {
            let protected = run(gate(settings), request(route: "subscription", headers: headers))
            for input in [authRequest(headers: headers), asLine(authRequest(headers: headers))] {
                let auth = run(gate(settings), input)
                XCTAssertTrue(auth.isResponse)
                XCTAssertEqual(auth.status, protected.status, "\(headers)")
                XCTAssertEqual(auth.headers, protected.headers, "\(headers)")
                XCTAssertEqual(auth.body, protected.body, "\(headers)")
                XCTAssertEqual(auth.annotation("audit"), protected.annotation("audit"))
                // Never an identity; the refusal's reason, for the access log and the metrics, as on the protected route.
                XCTAssertNil(auth.annotation("auth")?["uid"])
                XCTAssertEqual(auth.annotation("auth"), protected.annotation("auth"))
            }
        }
        let noKeys = run(gate(keys: directory + "/absent.json"), authRequest(headers: [("authorization", "Bearer " + validToken)]))
        XCTAssertEqual(noKeys.status, 503)
        XCTAssertEqual(body(noKeys)["error"], "keys_unavailable")
    }

    func testAuthRouteRefusesARequestThatCarriesItsOwnIdentityHeaders() {
        var settings = GateSettings()
        settings.claimHeaders = [("email", "x-user-email")]
        let spoofs: [(String, String)] = [("x-authenticated-uid", "admin"), ("X-Authenticated-Uid", "admin"),
                                          ("x-authenticated-role", "admin"), ("x-user-email", "boss@example.com")]
        for spoof in spoofs {
            // A valid token does not make the forged header acceptable: the proxy would forward it.
            let record = authRequest(headers: [("host", "h"), spoof, ("authorization", "Bearer " + validToken)])
            let inputs = spoof.0.contains("X") ? [record] : [record, asLine(record)]
            for input in inputs {
                let out = run(gate(settings), input)
                XCTAssertEqual(out.status, 400, "\(spoof)")
                XCTAssertEqual(body(out), JSONObject([("error", "invalid_request"), ("message", .string(VerifyJWTFilter.identityHeadersReason))]))
                XCTAssertFalse(out.text.contains("admin") || out.text.contains("boss@"), "a forged value never comes back")
                XCTAssertEqual(out.annotation("auth"), .object(JSONObject([("refused", "identity_headers")])))
            }
        }
        // On other routes the same headers are only removed, as before.
        let passed = run(gate(settings), request(route: "subscription", headers: [spoofs[0], ("authorization", "Bearer " + validToken)]))
        XCTAssertFalse(passed.isResponse)
        XCTAssertEqual(passed.headerValues("x-authenticated-uid"), ["user-1"])
    }

    func testAuthRouteNeedsATokenWhateverPublicSettingCoversItsPath() {
        var settings = GateSettings()
        settings.publicPrefixes = ["/"]
        let out = run(gate(settings), authRequest(headers: [("host", "h")]))
        XCTAssertEqual(out.status, 401)
        XCTAssertFalse(run(gate(settings), request(path: "/auth", headers: [("host", "h")])).isResponse,
                       "without the route name /auth is just a path")
    }

    func testAuthRouteCanBeRenamedOrTurnedOff() {
        var renamed = GateSettings()
        renamed.authRoute = "forward-auth"
        let asProtected = run(gate(renamed), authRequest(headers: [("authorization", "Bearer " + validToken)]))
        XCTAssertFalse(asProtected.isResponse, "'auth' is now an ordinary protected route")
        XCTAssertEqual(asProtected.headerValues("x-authenticated-uid"), ["user-1"])
        var forwardAuth = request(route: "forward-auth", headers: [("authorization", "Bearer " + validToken)])
        gate(renamed).handle(&forwardAuth)
        XCTAssertEqual(forwardAuth.status, 200)

        var off = GateSettings()
        off.authRoute = nil
        XCTAssertFalse(run(gate(off), authRequest(headers: [("authorization", "Bearer " + validToken)])).isResponse)
    }
}

extension ConfigurationTests {
    func testAuthRouteIsNamedByFlagOrEnvironmentAndADashTurnsItOff() throws {
        let base = ["--jwks-file", "/k", "--issuer", "i", "--audience", "a"]
        XCTAssertEqual(try parse(base).get().gate.authRoute, "auth")
        XCTAssertEqual(try parse(base + ["--auth-route", "check"]).get().gate.authRoute, "check")
        XCTAssertEqual(try parse(base, env: ["EDGEPIPE_JWT_AUTH_ROUTE": "check"]).get().gate.authRoute, "check")
        XCTAssertNil(try parse(base, env: ["EDGEPIPE_JWT_AUTH_ROUTE": "-"]).get().gate.authRoute)
        XCTAssertNil(try parse(base + ["--auth-route", "-"]).get().gate.authRoute)
        XCTAssertNil(try parse(base + ["--auth-route", ""]).get().gate.authRoute)
    }

    func testAuthRouteCannotAlsoBePublic() {
        let base = ["--jwks-file", "/k", "--issuer", "i", "--audience", "a"]
        guard case .failure(let e) = parse(base + ["--public-route", "auth"]) else { return XCTFail("accepted") }
        XCTAssertTrue(e.description.contains("auth route"))
        XCTAssertNotNil(try? parse(base + ["--public-route", "auth", "--auth-route", "check"]).get())
    }
}
