#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One option of a tool, declared once: from the declaration come the usage text, the
/// parsing, the environment variable that stands in for it, and (for lists) the
/// comma-separated form of that variable.
public final class OptionSpec: Sendable {
    public enum Kind: Sendable, Equatable {
        /// Present or not; its variable counts as set when it is 1, true, yes or on.
        case flag
        /// Takes a value (the placeholder names it in the usage); the last one given wins.
        case value(String)
        /// Takes a value and may be repeated; its variable is a comma-separated list.
        case list(String)
    }

    public let name: String
    public let aliases: [String]
    public let kind: Kind
    public let environment: String?
    public let help: String

    public static func flag(_ name: String, env: String? = nil, _ help: String) -> OptionSpec {
        OptionSpec(name: name, aliases: [], kind: .flag, environment: env, help: help)
    }

    public static func value(_ name: String, _ placeholder: String, env: String? = nil, aliases: [String] = [],
                             _ help: String) -> OptionSpec {
        OptionSpec(name: name, aliases: aliases, kind: .value(placeholder), environment: env, help: help)
    }

    public static func list(_ name: String, _ placeholder: String, env: String? = nil, _ help: String) -> OptionSpec {
        OptionSpec(name: name, aliases: [], kind: .list(placeholder), environment: env, help: help)
    }

    /// An environment variable for `OptionTable.variables`.
    public convenience init(_ variable: String, _ help: String) {
        self.init(name: variable, aliases: [], kind: .flag, environment: nil, help: help)
    }

    init(name: String, aliases: [String], kind: Kind, environment: String?, help: String) {
        self.name = name
        self.aliases = aliases
        self.kind = kind
        self.environment = environment
        self.help = help
    }

    var takesValue: Bool { kind != .flag }

    /// `--name PLACEHOLDER`, as the usage and the docs write it.
    public var form: String {
        switch kind {
        case .flag: return name
        case .value(let p): return "\(name) \(p)"
        case .list(let p): return "\(name) \(p)"
        }
    }
}

/// Why a command line was refused: one line, and exit status 2.
public struct OptionError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A tool's whole command line, declared in one place. `parse` reads the arguments
/// against it: `--help` prints `usage` and exits 0; an unknown option, a missing value or
/// an argument where none is expected exits 2 with a one-line reason.
///
/// A final class, not a struct: `ParsedOptions` and the parser pass it around, and a
/// struct of seven fields was copied (and each field retained) at every pass.
public final class OptionTable: Sendable {
    /// An environment variable read besides the options' own: an `OptionSpec` with a name
    /// and a help text only, so that a table holds one array type (each array type of its
    /// own costs a metadata instantiation at every start).
    public typealias Variable = OptionSpec

    public let program: String
    /// What follows "usage: " (one entry a line), e.g. "route --table FILE [--check]".
    public let synopsis: [String]
    /// What the tool does, in a few lines.
    public let summary: String
    public let options: [OptionSpec]
    /// Environment variables read besides the options' own (for the usage only: built when
    /// asked, so a start allocates none of them).
    public var variables: [Variable] { makeVariables() }
    private let makeVariables: @Sendable () -> [Variable]
    /// Positional arguments: nil when none is allowed.
    public let arguments: String?
    /// The exit statuses and anything else for the end of the usage.
    public let epilogue: String

    public init(program: String, synopsis: [String], summary: String, options: [OptionSpec],
                variables: @autoclosure @escaping @Sendable () -> [Variable] = [], arguments: String? = nil, epilogue: String) {
        self.program = program
        self.synopsis = synopsis
        self.summary = summary
        self.options = options
        self.makeVariables = variables
        self.arguments = arguments
        self.epilogue = epilogue
    }

    public func spec(_ name: String) -> OptionSpec? {
        index(of: name).map { options[$0] }
    }

    /// An index, not an `OptionSpec?`: the parser works with `Int`s and `String`s only,
    /// whose generic metadata the runtime has prespecialised; an `Optional<OptionSpec>` or
    /// an array of tuples costs a metadata instantiation at every start (`kv serve`,
    /// each filter once per connection).
    func index(of name: String) -> Int? {
        // Lengths first: most names differ in length, and comparing two long names (over 15
        // bytes, not inline) goes through the stdlib's general comparison.
        let count = name.utf8.count
        for i in options.indices {
            let o = options[i]
            if o.name.utf8.count == count && o.name == name { return i }
            if !o.aliases.isEmpty && o.aliases.contains(name) { return i }
        }
        return nil
    }

    /// The `--help` text, generated from the declaration.
    public var usage: String {
        var out = ""
        for (i, line) in synopsis.enumerated() { out += (i == 0 ? "usage: " : "       ") + line + "\n" }
        out += "\n" + summary.trimmingTrailingNewlines() + "\n"
        if !options.isEmpty {
            out += "\noptions:\n"
            for o in options {
                var left = "  " + o.form
                if case .list = o.kind { left += " (repeatable)" }
                let text = o.help.split(separator: "\n", omittingEmptySubsequences: false)
                left = left.count >= 28 ? left + "\n" + String(repeating: " ", count: 28) : left.padded(to: 28)
                out += left + text[0] + "\n"
                for more in text.dropFirst() { out += String(repeating: " ", count: 28) + more + "\n" }
                var notes: [String] = []
                if !o.aliases.isEmpty { notes.append("also " + o.aliases.joined(separator: ", ")) }
                if let env = o.environment {
                    if case .list = o.kind { notes.append("env \(env), comma-separated") } else { notes.append("env \(env)") }
                }
                if !notes.isEmpty { out += String(repeating: " ", count: 28) + "(" + notes.joined(separator: "; ") + ")\n" }
            }
        }
        if !variables.isEmpty {
            out += "\nenvironment:\n"
            for v in variables {
                let left = "  " + v.name
                out += (left.count >= 28 ? left + "\n" + String(repeating: " ", count: 28) : left.padded(to: 28)) + v.help + "\n"
            }
        }
        out += "\n" + epilogue.trimmingTrailingNewlines() + "\n"
        return out
    }

    /// Reads `arguments` against the table, or prints the reason and exits 2 (`--help`:
    /// the usage, exit 0). Sets `Log.program`.
    public func parse(_ arguments: [String] = Array(CommandLine.arguments.dropFirst()),
                      env: @escaping @Sendable (String) -> String? = { environment($0) }) -> ParsedOptions {
        Log.program = program
        if arguments.prefix(while: { $0 != "--" }).contains(where: { $0 == "--help" || $0 == "-h" }) {
            FileOutput.writeAll(1, Array(usage.utf8))
            exit(0)
        }
        do { return try read(arguments, env: env) } catch { Log.fatal("\(error.description) (try --help)") }
    }

    /// `parse` without the exits, for tests and for tools that report differently.
    public func read(_ arguments: [String], env: @escaping @Sendable (String) -> String? = { environment($0) }) throws(OptionError) -> ParsedOptions {
        // Parallel arrays of types a start instantiates anyway: the table's own [OptionSpec]
        // and [String] (an [Int] here cost a metadata instantiation whenever an option was
        // given); a flag's value is "".
        var givenOptions: [OptionSpec] = []
        var givenValues: [String] = []
        var positional: [String] = []
        var i = 0
        var literal = false
        while i < arguments.count {
            let a = arguments[i]
            i += 1
            if literal || a == "-" || !a.hasPrefix("-") {
                positional.append(a)
                continue
            }
            if a == "--" { literal = true; continue }
            let name: String
            var inline: String?
            if let eq = a.utf8.firstIndex(of: UInt8(ascii: "=")) {  // bytes: a Character search costs 2 k
                name = String(a[..<eq])
                inline = String(a[a.index(after: eq)...])
            } else {
                name = a
            }
            guard let n = index(of: name) else { throw OptionError("unknown option \(name)") }
            if options[n].takesValue {
                if inline == nil {
                    guard i < arguments.count else { throw OptionError("\(name) needs a value") }
                    inline = arguments[i]
                    i += 1
                }
                givenOptions.append(options[n])
                givenValues.append(inline ?? "")
            } else {
                guard inline == nil else { throw OptionError("\(name) takes no value") }
                givenOptions.append(options[n])
                givenValues.append("")
            }
        }
        if self.arguments == nil, let first = positional.first { throw OptionError("unexpected argument '\(first)'") }
        return ParsedOptions(table: self, givenOptions: givenOptions, givenValues: givenValues, positional: positional, env: env)
    }
}

/// What a command line said, with each option's environment variable behind it.
///
/// A final class: a struct of three arrays, dropped where a tool passes `parse()` straight
/// on, was destroyed through Array's generic metadata (~28 k instructions at start).
public final class ParsedOptions: Sendable {
    public let table: OptionTable
    /// The options given, in order, beside their values.
    private let givenOptions: [OptionSpec]
    private let givenValues: [String]
    public let positional: [String]
    private let env: @Sendable (String) -> String?

    init(table: OptionTable, givenOptions: [OptionSpec], givenValues: [String], positional: [String],
         env: @escaping @Sendable (String) -> String?) {
        self.table = table
        self.givenOptions = givenOptions
        self.givenValues = givenValues
        self.positional = positional
        self.env = env
    }

    private func declared(_ name: String) -> OptionSpec {
        guard let n = table.index(of: name) else { preconditionFailure("\(table.program): \(name) is not in the option table") }
        return table.options[n]
    }

    /// Whether the option is on the command line.
    public func isGiven(_ name: String) -> Bool {
        let o = declared(name)
        return givenOptions.contains { $0 === o }
    }

    /// The last value given, else the environment variable's.
    public func value(_ name: String) -> String? {
        let o = declared(name)
        if let last = givenOptions.lastIndex(where: { $0 === o }) { return givenValues[last] }
        return o.environment.flatMap(env)
    }

    /// Every value given, in order; else the environment variable's comma-separated items,
    /// trimmed, without empty ones.
    public func values(_ name: String) -> [String] {
        let o = declared(name)
        var fromArguments: [String] = []
        for i in givenOptions.indices where givenOptions[i] === o { fromArguments.append(givenValues[i]) }
        if !fromArguments.isEmpty { return fromArguments }
        guard let variable = o.environment, let text = env(variable) else { return [] }
        return ParsedOptions.commaSeparated(text)
    }

    /// On the command line, or its variable set to 1, true, yes or on.
    public func flag(_ name: String) -> Bool {
        let o = declared(name)
        if givenOptions.contains(where: { $0 === o }) { return true }
        guard let variable = o.environment, let v = env(variable) else { return false }
        return ["1", "true", "yes", "on"].contains(v.lowercased())
    }

    /// An integer option: `fallback` when absent; a non-number or one below `min` is refused.
    public func integer(_ name: String, default fallback: Int, min: Int = Int.min) throws(OptionError) -> Int {
        guard let text = value(name) else { return fallback }
        guard let n = Int(text), n >= min else {
            throw OptionError(min == Int.min ? "\(name) must be an integer, got '\(text)'"
                                             : "\(name) must be an integer >= \(min), got '\(text)'")
        }
        return n
    }

    /// `integer`, exiting 2 with the reason.
    public func int(_ name: String, default fallback: Int, min: Int = Int.min) -> Int {
        do { return try integer(name, default: fallback, min: min) } catch { Log.fatal(error.description) }
    }

    /// The items of a comma-separated setting, trimmed, without empty ones.
    public static func commaSeparated(_ text: String) -> [String] {
        text.split(separator: ",").map { String($0.trimmingSpacesAndTabs()) }.filter { !$0.isEmpty }
    }
}

/// The data directory's conventional places: `$EDGEPIPE_DATA/<name>` (kv, audit/audit.log,
/// jwks, dev-keys, ...), nil when EDGEPIPE_DATA is not set.
public func dataPath(_ name: String) -> String? {
    dataDirectory.map { joinedPath($0, name) }
}

/// `dataPath` with the environment given (tests, and callers that read it their own way).
public func dataPath(_ name: String, env: (String) -> String?) -> String? {
    env("EDGEPIPE_DATA").map { joinedPath($0, name) }
}

/// EDGEPIPE_DATA, read once and kept. Freeing a long String (over 15 bytes) costs its
/// process ~35 k instructions the first time (the runtime builds Optional's metadata for
/// the storage's deinit); a data directory read, joined and dropped at each `dataPath`
/// made a start pay that.
private let dataDirectory: String? = environment("EDGEPIPE_DATA")

/// One allocation and no temporaries (`dir + "/" + name` made and freed one).
private func joinedPath(_ directory: String, _ name: String) -> String {
    var path = ""
    path.reserveCapacity(directory.utf8.count + 1 + name.utf8.count)
    path += directory
    path += "/"
    path += name
    return path
}

extension String {
    fileprivate func padded(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }

    fileprivate func trimmingTrailingNewlines() -> Substring {
        var s = self[...]
        while s.last == "\n" { s = s.dropLast() }
        return s
    }
}
