import XCTest
@testable import Records
@testable import reserve

/// Issue 19 §8: the reservation service keeps its promises.
final class PromisesTests: XCTestCase {
    // MARK: The link's lifetime is never over-promised

    func testNinetyMinutesAreNotCalledTwoHours() {
        XCTAssertEqual(ConfirmationMail.lifetime(5400), "1 hour 30 minutes")
        XCTAssertEqual(ConfirmationMail.lifetime(86_400), "24 hours")
        XCTAssertEqual(ConfirmationMail.lifetime(3600), "1 hour")
        XCTAssertEqual(ConfirmationMail.lifetime(3599), "59 minutes")
        XCTAssertEqual(ConfirmationMail.lifetime(90), "1 minute")
        XCTAssertEqual(ConfirmationMail.lifetime(1), "1 second")
        let mail = ConfirmationMail(from: "r@example.com", to: "a@b.co", subdomain: "abc", link: "https://x/?token=T",
                                    expiresInSeconds: 5400, date: 0, messageID: "m@x")
        XCTAssertTrue(String(decoding: mail.bytes, as: UTF8.self).contains("within 1 hour 30 minutes:"))
    }

    func testNoLifetimePromisesMoreSecondsThanTheLinkHas() {
        let unit = ["second": 1, "minute": 60, "hour": 3600]
        for ttl in Array(1...7300) + [86_399, 86_400, 86_401, 172_799, 604_800] {
            let words = ConfirmationMail.lifetime(ttl).split(separator: " ")
            var promised = 0
            for i in stride(from: 0, to: words.count, by: 2) {
                let name = words[i + 1].hasSuffix("s") ? String(words[i + 1].dropLast()) : String(words[i + 1])
                promised += Int(words[i])! * unit[name]!
            }
            XCTAssertLessThanOrEqual(promised, ttl, "\(ttl) s promised as \(promised) s")
            XCTAssertGreaterThan(promised, ttl - (ttl < 60 ? 1 : 60), "\(ttl) s promised as only \(promised) s")
        }
    }

    // MARK: Refused input is clipped on a character boundary

    func testClipNeverCutsACharacterAndStaysWithinTheLimit() {
        let pieces = ["a", "é", "€", "😀", "\u{301}"]
        // Every mix of one- to four-byte characters (and a combining mark), at every
        // alignment around the limit.
        for seed in 0..<400 {
            var s = ""
            for i in 0..<(100 + seed % 100) { s += pieces[(i * (seed + 1) + i / 3 + seed) % pieces.count] }
            let clipped = ReserveFilter.clip(s)
            let bytes = Array(clipped.utf8)
            XCTAssertLessThanOrEqual(bytes.count, 254)
            XCTAssertFalse(clipped.unicodeScalars.contains("\u{FFFD}"))
            XCTAssertEqual(Array(s.utf8.prefix(bytes.count)), bytes, "a prefix of the input")
            if s.utf8.count > 254 { XCTAssertGreaterThan(bytes.count, 254 - 4, "the longest whole-character prefix") }
        }
        XCTAssertEqual(Array(ReserveFilter.clip(String(repeating: "€", count: 100)).utf8).count, 252)
    }

    func testTheAuditOfALongRefusedNameIsClippedWhole() {
        let h = Harness()
        let name = String(repeating: "€", count: 100)
        let body = JSON.object(JSONObject([("subdomain", .string(name)), ("email", "a@b.co")])).text
        let r = h.filter().handled(postJSON("/v1/reservations", body))
        XCTAssertEqual(r.status, 422)
        let clipped = r.annotation(AnnotationKey.audit)?["subdomain"]?.string ?? ""
        XCTAssertEqual(clipped, String(repeating: "€", count: 84))
    }

    // MARK: Owners are told the name is theirs

    func testSubmittingAgainForAnOwnNameSaysItIsAlreadyYours() throws {
        let h = Harness()
        let t = try h.submitted("mine", "ann@example.com")
        XCTAssertEqual(try h.service().confirm(token: t).0, .confirmed)
        XCTAssertEqual(try h.service().submit(subdomain: "mine", email: "ANN@example.com").0, .alreadyYours)
        XCTAssertEqual(h.mailer.messages.count, 1, "no second mail")
        XCTAssertEqual(try h.service().submit(subdomain: "mine", email: "bob@example.com").0, .taken(field: "subdomain"))
    }

    func testClickingTheSecondOfTwoOwnMailsSaysItIsAlreadyYours() throws {
        let h = Harness()
        let first = try h.submitted("mine", "ann@example.com")
        let second = try h.submitted("mine", "ann@example.com")
        XCTAssertEqual(try h.service().confirm(token: first).0, .confirmed)
        let (outcome, subject) = try h.service().confirm(token: second)
        XCTAssertEqual(outcome, .alreadyYours)
        XCTAssertEqual(subject, .init(subdomain: "mine", email: "ann@example.com"))
        XCTAssertEqual(try h.store.get("reserve/subdomain/mine")?.value["email"], "ann@example.com", "the reservation stands")
        XCTAssertEqual(try h.service().confirm(token: second).0, .tokenUsed)
    }

    func testAnotherAddressConfirmingTheSameNameIsStillTaken() throws {
        let h = Harness()
        let ann = try h.submitted("contested", "ann@example.com")
        let bob = try h.submitted("contested", "bob@example.com")
        XCTAssertEqual(try h.service().confirm(token: ann).0, .confirmed)
        XCTAssertEqual(try h.service().confirm(token: bob).0, .taken(field: "subdomain"))
    }

    func testAlreadyYoursIs200WithTheMessageAndIsAudited() throws {
        let h = Harness()
        XCTAssertEqual(try h.service().confirm(token: try h.submitted("mine", "ann@example.com")).0, .confirmed)
        let r = h.filter().handled(postJSON("/v1/reservations", #"{"subdomain":"mine","email":"ann@example.com"}"#))
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(bodyJSON(r)?["status"], "already_yours")
        XCTAssertEqual(bodyJSON(r)?["message"], "this name is already yours")
        XCTAssertEqual(r.annotation(AnnotationKey.audit)?["outcome"], "already_yours")
    }

    // MARK: Leading and trailing spaces are trimmed, as the page does

    func testSpacesAroundTheFieldsAreTrimmed() throws {
        let h = Harness()
        let (outcome, subject) = try h.service().submit(subdomain: "  My-Site \t", email: "\u{A0}ann@example.com \u{FEFF}")
        XCTAssertEqual(outcome, .verificationSent)
        XCTAssertEqual(subject, .init(subdomain: "my-site", email: "ann@example.com"))
        guard case .invalid(let e) = try h.service().submit(subdomain: "my site", email: "a@b.co").0 else { return XCTFail() }
        XCTAssertEqual(e.field, "subdomain", "spaces inside are still refused")
        guard case .invalid(let m) = try h.service().submit(subdomain: "   ", email: "a@b.co").0 else { return XCTFail() }
        XCTAssertEqual(m.message, "the subdomain is empty")
    }

    // MARK: Look-alike names

    func testLabelsMixingLatinWithCyrillicOrGreekAreRefused() throws {
        let h = Harness(blocklist: "*paypal*\n")
        // pаypal with a Cyrillic а, pαypal with a Greek α, Cyrillic and Greek together.
        for word in ["p\u{430}ypal", "p\u{3B1}ypal", "\u{43F}\u{3B1}\u{439}"] {
            let label = "xn--" + Punycode.encode(Array(word.unicodeScalars))!
            guard case .invalid(let e) = try h.service().submit(subdomain: label, email: "a@b.co").0 else {
                return XCTFail("\(label) (\(word)) was not refused")
            }
            XCTAssertEqual(e.field, "subdomain")
            XCTAssertTrue(e.message.contains("mixes"), e.message)
        }
        guard case .invalid(let e) = try h.service().submit(subdomain: "xn--pypal-4ve", email: "a@b.co").0 else {
            return XCTFail("xn--pypal-4ve got past *paypal*")
        }
        XCTAssertEqual(e.message, "the subdomain mixes Latin and Cyrillic letters, as look-alikes of other names do")
        XCTAssertTrue(h.mailer.messages.isEmpty)
    }

    func testScriptMixingIsJudgedOnLettersOnly() {
        func scalars(_ s: String) -> [Unicode.Scalar] { Array(s.unicodeScalars) }
        XCTAssertEqual(Script.mixed(scalars("pаypal")), [.latin, .cyrillic])
        XCTAssertEqual(Script.mixed(scalars("aβc")), [.latin, .greek])
        XCTAssertEqual(Script.mixed(scalars("жβ")), [.cyrillic, .greek])
        XCTAssertNil(Script.mixed(scalars("домен-2")), "one script, with digits and a hyphen")
        XCTAssertNil(Script.mixed(scalars("café")), "Latin with an accent")
        XCTAssertNil(Script.mixed(scalars("ελληνικά")))
        XCTAssertNil(Script.mixed(scalars("bücher日本")), "other scripts are not look-alikes of these")
    }

    func testSingleScriptInternationalNamesStillPass() throws {
        let h = Harness()
        for word in ["домен", "café", "ελληνικά", "bücher"] {
            let label = "xn--" + Punycode.encode(Array(word.unicodeScalars))!
            XCTAssertEqual(try h.service().submit(subdomain: label, email: "\(label)@example.com").0, .verificationSent, label)
        }
    }

    // MARK: A JSON field sent twice is a 422 naming it

    func testDuplicateJSONKeyIs422NamingTheField() {
        let h = Harness()
        let r = h.filter().handled(postJSON("/v1/reservations", #"{"subdomain":"a-site","email":"a@b.co","email":"c@d.co"}"#))
        XCTAssertEqual(r.status, 422)
        XCTAssertEqual(bodyJSON(r)?["error"], "invalid_field")
        XCTAssertEqual(bodyJSON(r)?["field"], "email")
        XCTAssertEqual(r.annotation(AnnotationKey.audit)?["outcome"], "invalid")
        XCTAssertEqual(r.annotation(AnnotationKey.audit)?["field"], "email")
        let token = h.filter().handled(postJSON("/v1/reservations/confirm", #"{"token":"x","token":"y"}"#))
        XCTAssertEqual(token.status, 422)
        XCTAssertEqual(bodyJSON(token)?["field"], "token")
        XCTAssertTrue(h.mailer.messages.isEmpty)
    }

    func testAKeyRepeatedDeeperDownIsStillABadBody() {
        let h = Harness()
        let r = h.filter().handled(postJSON("/v1/reservations", #"{"subdomain":{"a":1,"a":2},"email":"a@b.co"}"#))
        XCTAssertEqual(r.status, 400)
        XCTAssertEqual(bodyJSON(r)?["error"], "bad_request")
    }
}
