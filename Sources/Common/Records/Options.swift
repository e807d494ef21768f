#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A small command-line reader: `--name value`, `--name=value`, boolean `--flag`,
/// each with an optional environment variable as its default (flags override the
/// environment). `--help` prints the usage text and exits 0; an unknown option exits 2
/// with a one-line reason.
public struct Options {
    public let program: String
    private var args: [String]

    public init(program: String, usage: String, arguments: [String] = Array(CommandLine.arguments.dropFirst())) {
        self.program = program
        Log.program = program
        if arguments.contains("--help") || arguments.contains("-h") {
            FileOutput.writeAll(1, Array((usage.hasSuffix("\n") ? usage : usage + "\n").utf8))
            exit(0)
        }
        args = arguments
    }

    /// The value of `--name`, else of the environment variable `env`, else nil.
    public mutating func value(_ name: String, env: String? = nil) -> String? {
        let all = values(name)
        if let last = all.last { return last }
        if let env { return environment(env) }
        return nil
    }

    /// Every value of a repeatable option, in order.
    public mutating func values(_ name: String) -> [String] {
        var found: [String] = []
        var i = 0
        while i < args.count {
            let a = args[i]
            if a == name {
                guard i + 1 < args.count else { Log.fatal("\(name) needs a value") }
                found.append(args[i + 1])
                args.removeSubrange(i...(i + 1))
            } else if a.hasPrefix(name + "=") {
                found.append(String(a.dropFirst(name.count + 1)))
                args.remove(at: i)
            } else if a == "--" {
                break
            } else {
                i += 1
            }
        }
        return found
    }

    /// An integer option, with a default; a non-number exits 2.
    public mutating func int(_ name: String, env: String? = nil, default value: Int) -> Int {
        guard let text = self.value(name, env: env) else { return value }
        guard let n = Int(text) else { Log.fatal("\(name) must be an integer, got '\(text)'") }
        return n
    }

    /// A boolean flag: present on the command line, or the environment variable set to 1/true/yes.
    public mutating func flag(_ name: String, env: String? = nil) -> Bool {
        if let i = args.firstIndex(of: name) {
            args.remove(at: i)
            return true
        }
        if let env, let v = environment(env) { return ["1", "true", "yes", "on"].contains(v.lowercased()) }
        return false
    }

    /// The positional arguments left; exits 2 on any unknown option.
    public func rest() -> [String] {
        var out: [String] = []
        var literal = false
        for a in args {
            if literal { out.append(a); continue }
            if a == "--" { literal = true; continue }
            if a.hasPrefix("-") && a.count > 1 { Log.fatal("unknown option \(a) (try --help)") }
            out.append(a)
        }
        return out
    }
}
