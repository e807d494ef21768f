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
        if let otherwise { return (nil, otherwise.parse(arguments)) }
        let names = commands.map(\.name).joined(separator: " or ")
        guard let first = arguments.first, !first.hasPrefix("-") else { Log.fatal("missing command: \(names) (try --help)") }
        Log.fatal("unknown command '\(first)' (try --help)")
    }
}
