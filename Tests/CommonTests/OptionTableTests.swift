import XCTest
@testable import Records

final class OptionTableTests: XCTestCase {
    let table = OptionTable(
        program: "teapot",
        synopsis: ["teapot [--path P] [--strict] FILE..."],
        summary: "Answers 418 on one path.",
        options: [
            .value("--path", "P", env: "TEAPOT_PATH", aliases: ["--where"], "the path to answer"),
            .flag("--strict", env: "TEAPOT_STRICT", "refuse the rest"),
            .list("--allow", "CIDR", env: "TEAPOT_ALLOW", "peers allowed"),
            .value("--limit", "N", env: "TEAPOT_LIMIT", "at most N"),
        ],
        variables: [.init("TEAPOT_CLOCK", "seconds added to the clock")],
        arguments: "FILE...",
        epilogue: "exit status: 0 ok, 2 usage")

    func env(_ values: [String: String]) -> @Sendable (String) -> String? { { values[$0] } }

    func test_a_flag_on_the_command_line_wins_over_its_variable() throws {
        let parsed = try table.read(["--path", "/a"], env: env(["TEAPOT_PATH": "/env"]))
        XCTAssertEqual(parsed.value("--path"), "/a")
        XCTAssertTrue(parsed.isGiven("--path"))
    }

    func test_the_variable_stands_in_for_an_absent_option() throws {
        let parsed = try table.read([], env: env(["TEAPOT_PATH": "/env", "TEAPOT_STRICT": "yes"]))
        XCTAssertEqual(parsed.value("--path"), "/env")
        XCTAssertFalse(parsed.isGiven("--path"))
        XCTAssertTrue(parsed.flag("--strict"))
    }

    func test_name_equals_value_and_the_last_value_wins() throws {
        let parsed = try table.read(["--path=/a", "--path", "/b"], env: env([:]))
        XCTAssertEqual(parsed.value("--path"), "/b")
    }

    func test_an_alias_reads_as_the_option() throws {
        let parsed = try table.read(["--where", "/w"], env: env([:]))
        XCTAssertEqual(parsed.value("--path"), "/w")
    }

    func test_lists_repeat_on_the_command_line_and_are_comma_separated_in_the_variable() throws {
        XCTAssertEqual(try table.read(["--allow", "a", "--allow", "b,c"], env: env([:])).values("--allow"), ["a", "b,c"])
        XCTAssertEqual(try table.read([], env: env(["TEAPOT_ALLOW": " a, b ,,c "])).values("--allow"), ["a", "b", "c"])
        XCTAssertEqual(try table.read([], env: env([:])).values("--allow"), [])
    }

    func test_flag_variables_count_only_when_set_to_a_yes() throws {
        for yes in ["1", "true", "YES", "on"] { XCTAssertTrue(try table.read([], env: env(["TEAPOT_STRICT": yes])).flag("--strict")) }
        for no in ["0", "false", "", "nope"] { XCTAssertFalse(try table.read([], env: env(["TEAPOT_STRICT": no])).flag("--strict")) }
    }

    func test_positional_arguments_are_kept_in_order_and_dash_dash_ends_the_options() throws {
        let parsed = try table.read(["a", "--strict", "b", "--", "--path", "-"], env: env([:]))
        XCTAssertEqual(parsed.positional, ["a", "b", "--path", "-"])
        XCTAssertTrue(parsed.flag("--strict"))
        XCTAssertNil(parsed.value("--path"))
    }

    func test_refusals_say_what_is_wrong_in_one_line() {
        func reason(_ args: [String], _ t: OptionTable? = nil) -> String {
            do { _ = try (t ?? table).read(args, env: env([:])); return "accepted" } catch { return error.description }
        }
        XCTAssertEqual(reason(["--nope"]), "unknown option --nope")
        XCTAssertEqual(reason(["-x"]), "unknown option -x")
        XCTAssertEqual(reason(["--path"]), "--path needs a value")
        XCTAssertEqual(reason(["--strict=1"]), "--strict takes no value")
        let noArguments = OptionTable(program: "t", synopsis: ["t"], summary: "", options: [], epilogue: "")
        XCTAssertEqual(reason(["extra"], noArguments), "unexpected argument 'extra'")
    }

    func test_integers_are_checked() throws {
        XCTAssertEqual(try table.read([], env: env([:])).integer("--limit", default: 7), 7)
        XCTAssertEqual(try table.read(["--limit", "12"], env: env([:])).integer("--limit", default: 7, min: 1), 12)
        XCTAssertThrowsError(try table.read(["--limit", "x"], env: env([:])).integer("--limit", default: 7)) {
            XCTAssertEqual("\($0)", "--limit must be an integer, got 'x'")
        }
        XCTAssertThrowsError(try table.read([], env: env(["TEAPOT_LIMIT": "0"])).integer("--limit", default: 7, min: 1)) {
            XCTAssertEqual("\($0)", "--limit must be an integer >= 1, got '0'")
        }
    }

    func test_the_usage_names_every_option_its_variable_and_alias() {
        let usage = table.usage
        XCTAssertTrue(usage.hasPrefix("usage: teapot [--path P] [--strict] FILE...\n\nAnswers 418 on one path.\n"))
        for o in table.options { XCTAssertTrue(usage.contains("\n  \(o.form)"), o.name) }
        XCTAssertTrue(usage.contains("(also --where; env TEAPOT_PATH)"))
        XCTAssertTrue(usage.contains("(env TEAPOT_ALLOW, comma-separated)"))
        XCTAssertTrue(usage.contains("\nenvironment:\n  TEAPOT_CLOCK"))
        XCTAssertTrue(usage.hasSuffix("exit status: 0 ok, 2 usage\n"))
    }

    func test_the_data_directory_default_is_one_helper() {
        XCTAssertEqual(dataPath("kv", env: { $0 == "EDGEPIPE_DATA" ? "/srv/d" : nil }), "/srv/d/kv")
        XCTAssertNil(dataPath("kv", env: { _ in nil }))
    }
}
