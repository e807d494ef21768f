import Foundation
import XCTest
@testable import reserve

final class MailerTests: XCTestCase {
    var directory: String!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("reserve-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    private let message = Array("To: a@b.co\nSubject: hi\n\nbody\n".utf8)

    func testMaildirDeliveryLandsWholeInNew() throws {
        let outbox = directory + "/deep/outbox"
        try MaildirMailer(directory: outbox).send(message)
        try MaildirMailer(directory: outbox).send(message)
        let delivered = try FileManager.default.contentsOfDirectory(atPath: outbox + "/new")
        XCTAssertEqual(delivered.count, 2)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outbox + "/tmp"), [])
        XCTAssertTrue(FileManager.default.fileExists(atPath: outbox + "/cur"))
        XCTAssertEqual(FileManager.default.contents(atPath: outbox + "/new/" + delivered[0]), Data(message))
    }

    func testMaildirIntoAnUnwritablePlaceFails() throws {
        let file = directory + "/file"
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data()))
        XCTAssertThrowsError(try MaildirMailer(directory: file + "/outbox").send(message))
    }

    func testSendmailCommandGetsTheMessageOnStdin() throws {
        let out = directory + "/got"
        try SendmailMailer(command: "cat > '\(out)'", timeoutMillis: 5000).send(message)
        XCTAssertEqual(FileManager.default.contents(atPath: out), Data(message))
    }

    func testSendmailFailureStatusIsAnError() {
        XCTAssertThrowsError(try SendmailMailer(command: "cat >/dev/null; exit 75", timeoutMillis: 5000).send(message)) {
            XCTAssertEqual(($0 as? MailError)?.description, "the mail command exited with status 75")
        }
    }

    func testHungSendmailIsKilledAtTheTimeout() {
        let start = Date()
        XCTAssertThrowsError(try SendmailMailer(command: "sleep 10", timeoutMillis: 200).send(message))
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    func testConfirmationMailHasTheHeadersAndLink() {
        let mail = ConfirmationMail(from: "R <r@example.com>", to: "a@b.co", subdomain: "abc",
                                    link: "https://x.example/?token=T", expiresInSeconds: 86400, date: 0, messageID: "m@x")
        let text = String(decoding: mail.bytes, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("From: R <r@example.com>\nTo: a@b.co\nSubject: Confirm your reservation of abc\n"))
        XCTAssertTrue(text.contains("Date: Thu, 01 Jan 1970 00:00:00 +0000\n"))
        XCTAssertTrue(text.contains("\n\nSomeone, probably you"))
        XCTAssertTrue(text.contains("\nhttps://x.example/?token=T\n"))
        XCTAssertTrue(text.contains("within 24 hours"))
    }
}
