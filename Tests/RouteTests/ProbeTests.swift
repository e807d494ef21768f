import XCTest
@testable import route
final class ProbeTests: XCTestCase { func testProbe() { XCTAssertEqual(Probe.answer(), 42) } }
