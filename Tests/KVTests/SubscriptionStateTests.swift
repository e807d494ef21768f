import XCTest
import Records
import Subscriptions

final class SubscriptionStateTests: XCTestCase {
    let now = 1_800_000_000

    func state(_ status: SubscriptionState.Status, periodEnd: Int? = nil, trialEnd: Int? = nil) -> SubscriptionState {
        SubscriptionState(uid: "u1", status: status, plan: "pro", currentPeriodEnd: periodEnd, trialEnd: trialEnd)
    }

    func testKeyLayoutIsSubSlashUid() {
        XCTAssertEqual(SubscriptionState.key(uid: "alice"), "sub/alice")
        XCTAssertEqual(SubscriptionState.key(uid: "a/b"), "sub/a/b")
    }

    func testRoundTripsThroughJSONKeepingUnknownFields() throws {
        var s = SubscriptionState(uid: "u", status: .past_due, plan: "team", currentPeriodEnd: 10, trialEnd: 5,
                                  cancelAtPeriodEnd: true, customer: "cus_1", subscription: "sub_1",
                                  updated: 7, lastEventID: "evt_1")
        s.extra["applied_events"] = ["evt_0", "evt_1"]
        let text = s.json.text
        XCTAssertEqual(text, #"{"uid":"u","status":"past_due","plan":"team","current_period_end":10,"trial_end":5,"#
                       + #""cancel_at_period_end":true,"customer":"cus_1","subscription":"sub_1","updated":7,"#
                       + #""last_event_id":"evt_1","applied_events":["evt_0","evt_1"]}"#)
        XCTAssertEqual(try SubscriptionState(json: JSONReader.parse(text)), s)
    }

    func testDecodesMinimalDocumentsAndStripeSpellings() throws {
        let s = try SubscriptionState(json: ["uid": "u", "status": "trialing"])
        XCTAssertEqual(s.status, .trial)
        XCTAssertNil(s.plan)
        XCTAssertFalse(s.cancelAtPeriodEnd)
        XCTAssertEqual(try SubscriptionState(json: ["uid": "u", "status": "canceled"]).status, .cancelled)
    }

    func testRefusesDocumentsWithoutUidOrWithUnknownStatusOrWrongTypes() {
        XCTAssertThrowsError(try SubscriptionState(json: ["status": "active"]))
        XCTAssertThrowsError(try SubscriptionState(json: ["uid": "u", "status": "bogus"]))
        XCTAssertThrowsError(try SubscriptionState(json: ["uid": "u", "status": "active", "current_period_end": "soon"]))
        XCTAssertThrowsError(try SubscriptionState(json: ["uid": "u", "status": "active", "cancel_at_period_end": 1]))
        XCTAssertThrowsError(try SubscriptionState(json: "not an object"))
    }

    func testEveryStoredStatusMapsToAPublicOne() {
        let expected: [SubscriptionState.Status: SubscriptionState.PublicStatus] = [
            .active: .active, .trial: .trial, .past_due: .past_due, .cancelled: .cancelled, .expired: .expired,
            .unpaid: .unpaid, .incomplete: .none, .incomplete_expired: .expired, .paused: .expired,
        ]
        XCTAssertEqual(Set(expected.keys), Set(SubscriptionState.Status.allCases))
        for (stored, shown) in expected {
            XCTAssertEqual(state(stored, periodEnd: now + 100, trialEnd: now + 100).publicStatus(now: now), shown, "\(stored)")
        }
    }

    func testPaidPeriodThatEndedReadsAsExpired() {
        XCTAssertEqual(state(.active, periodEnd: now + 1).publicStatus(now: now), .active)
        XCTAssertEqual(state(.active, periodEnd: now).publicStatus(now: now), .expired)
        XCTAssertEqual(state(.past_due, periodEnd: now - 1).publicStatus(now: now), .expired)
        XCTAssertEqual(state(.unpaid, periodEnd: now - 1).publicStatus(now: now), .unpaid,
                       "unpaid revokes access whatever the period: it keeps its own status")
        XCTAssertEqual(state(.active).publicStatus(now: now), .active, "no known end: no expiry")
    }

    func testTrialThatEndedReadsAsExpired() {
        XCTAssertEqual(state(.trial, trialEnd: now + 60).publicStatus(now: now), .trial)
        XCTAssertEqual(state(.trial, trialEnd: now - 60).publicStatus(now: now), .expired)
        XCTAssertEqual(state(.trial, periodEnd: now - 1).publicStatus(now: now), .expired, "period end when no trial end")
    }

    func testGraceKeepsAnEndedPeriodForAWhile() {
        XCTAssertEqual(state(.active, periodEnd: now - 10).publicStatus(now: now, grace: 60), .active)
        XCTAssertEqual(state(.active, periodEnd: now - 60).publicStatus(now: now, grace: 60), .expired)
    }

    func testCancelledStaysCancelledAfterItsPeriod() {
        XCTAssertEqual(state(.cancelled, periodEnd: now - 100).publicStatus(now: now), .cancelled)
    }

    func testPublicViewCarriesExpiryAndTrialEnd() {
        let trial = state(.trial, periodEnd: now + 500, trialEnd: now + 100).publicView(now: now)
        XCTAssertEqual(trial["status"], "trial")
        XCTAssertEqual(trial["expires_at"], JSON(now + 100))
        XCTAssertEqual(trial["trial_ends_at"], JSON(now + 100))
        let active = state(.active, periodEnd: now + 500, trialEnd: now - 100).publicView(now: now)
        XCTAssertEqual(active["expires_at"], JSON(now + 500))
        XCTAssertEqual(active["plan"], "pro")
        XCTAssertEqual(active["stored_status"], "active")
        XCTAssertEqual(SubscriptionState.noneView(uid: "x")["status"], "none")
    }
}
