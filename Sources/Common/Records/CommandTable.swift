#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A tool whose first argument names a command (`audit verify`, `sign-jwt dev`): one
/// `OptionTable` per command, so options of one command given to another are refused.
/// `tool --help` prints every table's usage; `tool COMMAND --help` prints that command's.
public struct CommandTable: Sendable {
    public let program: String
    public let commands: [(name: String, table: OptionTable)]
    /// What runs when the first argument names no command (audit's filter); nil when a
    /// command is required.
    public let otherwise: OptionTable?

    public init(program: String, commands: [(name: String, table: OptionTable)], otherwise: OptionTable? = nil) {
        self.program = program
        self.commands = commands
        self.otherwise = otherwise
    }

    /// Every table's usage, the command-less one first.
    public var usage: String {
        ((otherwise.map { [$0] } ?? []) + commands.map(\.table)).map(\.usage).joined(separator: "\n")
    }

    /// The command named (nil: `otherwise`'s) and its options read against its table, or
    /// the reason and exit 2 (`--help` before any command: the usage, exit 0).
    public func parse(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> (command: String?, options: ParsedOptions) {
        Log.program = program
        if let first = arguments.first, let command = commands.first(where: { $0.name == first }) {
            return (first, command.table.parse(Array(arguments.dropFirst())))
        }
        if arguments.prefix(while: { $0 != "--" }).contains(where: { $0 == "--help" || $0 == "-h" }) {
            FileOutput.writeAll(1, Array(usage.utf8))
            exit(0)
        }
        do { return try read(arguments) } catch { Log.fatal("\(error.description) (try --help)") }
    }

    /// `parse` without the exits, for tests.
    public func read(_ arguments: [String], env: @escaping @Sendable (String) -> String? = { environment($0) })
        throws(OptionError) -> (command: String?, options: ParsedOptions) {
        if let first = arguments.first, let command = commands.first(where: { $0.name == first }) {
            return (first, try command.table.read(Array(arguments.dropFirst()), env: env))
        }
        if let otherwise { return (nil, try otherwise.read(arguments, env: env)) }
        let names = commands.map(\.name).joined(separator: " or ")
        guard let first = arguments.first, !first.hasPrefix("-") else { throw OptionError("missing command: \(names)") }
        throw OptionError("unknown command '\(first)'")
    }
}
