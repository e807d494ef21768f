import XCTest
@testable import Records

final class CommandTableTests: XCTestCase {
    static let brew = OptionTable(program: "teapot brew", synopsis: ["teapot brew [--leaves N] CUP"], summary: "Brews.",
                                  options: [.value("--leaves", "N", env: "TEAPOT_LEAVES", "how many")],
                                  arguments: "CUP", epilogue: "exit status: 0 brewed")
    static let pour = OptionTable(program: "teapot pour", synopsis: ["teapot pour [--slowly]"], summary: "Pours.",
                                  options: [.flag("--slowly", "without spilling")], epilogue: "exit status: 0 poured")
    static let steam = OptionTable(program: "teapot", synopsis: ["teapot [--hot]"], summary: "Steams.",
                                   options: [.flag("--hot", "hotter")], epilogue: "exit status: 0 steamed")

    let required = CommandTable(program: "teapot", commands: ["brew", "pour"]) { $0 == "brew" ? brew : pour }
    let optional = CommandTable(program: "teapot", commands: ["brew"], otherwise: true) { $0 == "brew" ? brew : steam }

    func reason(_ table: CommandTable, _ args: [String]) -> String {
        do { _ = try table.read(args, env: { _ in nil }); return "accepted" } catch { return error.description }
    }

    func test_the_first_argument_picks_the_table_and_the_rest_is_read_against_it() throws {
        let (command, options) = try required.read(["brew", "--leaves", "3", "mug"], env: { _ in nil })
        XCTAssertEqual(command, "brew")
        XCTAssertEqual(options.value("--leaves"), "3")
        XCTAssertEqual(options.positional, ["mug"])
        XCTAssertEqual(try required.read(["brew", "mug"], env: { $0 == "TEAPOT_LEAVES" ? "2" : nil }).options.value("--leaves"), "2")
    }

    func test_an_option_of_one_command_is_refused_by_another() {
        XCTAssertEqual(reason(required, ["pour", "--leaves", "3"]), "unknown option --leaves")
        XCTAssertEqual(reason(required, ["brew", "--slowly", "mug"]), "unknown option --slowly")
        XCTAssertEqual(reason(required, ["pour", "extra"]), "unexpected argument 'extra'")
    }

    func test_a_missing_or_unknown_command_is_named() {
        XCTAssertEqual(reason(required, []), "missing command: brew or pour")
        XCTAssertEqual(reason(required, ["--slowly"]), "missing command: brew or pour")
        XCTAssertEqual(reason(required, ["boil"]), "unknown command 'boil'")
    }

    func test_without_a_command_the_otherwise_table_reads_everything() throws {
        let (command, options) = try optional.read(["--hot"], env: { _ in nil })
        XCTAssertEqual(command, "")
        XCTAssertTrue(options.flag("--hot"))
        XCTAssertEqual(reason(optional, ["boil"]), "unexpected argument 'boil'")
        XCTAssertEqual(reason(optional, ["--leaves", "1"]), "unknown option --leaves")
    }

    func test_the_usage_is_every_table_s_the_command_less_one_first() {
        XCTAssertEqual(optional.usage, Self.steam.usage + "\n" + Self.brew.usage)
        XCTAssertTrue(required.usage.contains("usage: teapot brew") && required.usage.contains("usage: teapot pour"))
    }
}
