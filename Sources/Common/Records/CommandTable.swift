#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A tool whose first argument names a command (`audit verify`, `sign-jwt dev`): one
/// `OptionTable` per command, so options of one command given to another are refused.
/// `tool --help` prints every table's usage; `tool COMMAND --help` prints that command's.
///
/// The tables come from a function, not an array of them: a filter started once per
/// connection then builds only the table it runs with, and no array of tables or tuples
/// costs a metadata instantiation at start (a tuple array made audit's start 16% dearer).
public struct CommandTable: Sendable {
    public let program: String
    public let commands: [String]
    /// Whether a command line whose first argument names no command is read against
    /// `table("")` (audit's filter) rather than refused.
    public let otherwise: Bool
    /// The table of a command; "" for the command-less one.
    public let table: @Sendable (String) -> OptionTable

    public init(program: String, commands: [String], otherwise: Bool = false,
                table: @escaping @Sendable (String) -> OptionTable) {
        self.program = program
        self.commands = commands
        self.otherwise = otherwise
        self.table = table
    }

    /// Every table's usage, the command-less one first.
    public var usage: String {
        ((otherwise ? [""] : []) + commands).map { table($0).usage }.joined(separator: "\n")
    }

    /// The command named ("" for none) and its options read against its table, or the
    /// reason and exit 2 (`--help` before any command: the usage, exit 0).
    public func parse(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> (command: String, options: ParsedOptions) {
        Log.program = program
        if let first = arguments.first, commands.contains(first) {
            return (first, table(first).parse(Array(arguments.dropFirst())))
        }
        if arguments.prefix(while: { $0 != "--" }).contains(where: { $0 == "--help" || $0 == "-h" }) {
            FileOutput.writeAll(1, Array(usage.utf8))
            exit(0)
        }
        do { return try read(arguments) } catch { Log.fatal("\(error.description) (try --help)") }
    }

    /// `parse` without the exits, for tests.
    public func read(_ arguments: [String], env: @escaping @Sendable (String) -> String? = { environment($0) })
        throws(OptionError) -> (command: String, options: ParsedOptions) {
        if let first = arguments.first, commands.contains(first) {
            return (first, try table(first).read(Array(arguments.dropFirst()), env: env))
        }
        if otherwise { return ("", try table("").read(arguments, env: env)) }
        let names = commands.joined(separator: " or ")
        guard let first = arguments.first, !first.hasPrefix("-") else { throw OptionError("missing command: \(names)") }
        throw OptionError("unknown command '\(first)'")
    }
}
