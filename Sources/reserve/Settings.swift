import Records
import KV

/// The filter as configured by options and environment. Files are read here, once per
/// process, i.e. once per connection: an edited blocklist applies to the next connection.
extension ReserveFilter {
    static func configured(_ options: ParsedOptions) -> ReserveFilter {
        let storePath = options.value("--store") ?? dataPath("kv")
        let blocklistPath = options.value("--blocklist")
        let pagePath = options.value("--page")
        let adminsPath = options.value("--admins")
        let sendmail = options.value("--sendmail")
        let outbox = options.value("--outbox") ?? dataPath("reserve/outbox")
        var settings = ReservationSettings()
        settings.baseURL = options.value("--base-url") ?? settings.baseURL
        settings.mailFrom = options.value("--mail-from") ?? settings.mailFrom
        settings.tokenTTL = options.int("--token-ttl", default: settings.tokenTTL)
        settings.grace = options.int("--grace", default: settings.grace)
        let timeout = options.int("--sendmail-timeout", default: 10_000)

        guard settings.tokenTTL > 0 else { Log.fatal("--token-ttl must be positive") }
        guard settings.grace > 0 else { Log.fatal("--grace must be positive") }
        guard timeout > 0 else { Log.fatal("--sendmail-timeout must be positive") }
        guard ConfirmationMail.isSafeHeaderValue(settings.mailFrom) else { Log.fatal("--mail-from holds a control character") }
        guard settings.baseURL.hasPrefix("http://") || settings.baseURL.hasPrefix("https://"),
              ConfirmationMail.isSafeHeaderValue(settings.baseURL), !settings.baseURL.contains(" ") else {
            Log.fatal("--base-url must be an http:// or https:// URL")
        }

        // Each set once, not declared then replaced: replacing an optional array or a
        // Blocklist destroys the first value through generic metadata, at every start.
        let blocklist: Blocklist
        if let blocklistPath {
            guard let loaded = Blocklist.load(path: blocklistPath) else { Log.fatal("cannot read blocklist \(blocklistPath)") }
            blocklist = loaded
        } else {
            blocklist = Blocklist()
        }
        let page: Optional<[UInt8]>
        if let pagePath {
            guard let bytes = readFile(pagePath, limit: 1 << 20) else { Log.fatal("cannot read page \(pagePath)") }
            page = bytes
        } else {
            page = nil
        }
        var admins = Set<String>()
        if let adminsPath {
            guard let bytes = readFile(adminsPath, limit: 1 << 20) else { Log.fatal("cannot read admins \(adminsPath)") }
            admins.formUnion(Self.uids(String(decoding: bytes, as: UTF8.self)))
        }
        if let list = environment("EDGEPIPE_RESERVE_ADMINS") { admins.formUnion(Self.uids(list)) }

        let mailer: any Mailer
        if let sendmail {
            mailer = SendmailMailer(command: sendmail, timeoutMillis: timeout)
        } else if let outbox {
            mailer = MaildirMailer(directory: outbox)
        } else {
            Log.fatal("no way to send mail: give --sendmail CMD or --outbox DIR (or set EDGEPIPE_DATA)")
        }

        guard let storePath else { Log.fatal("no store: pass --store DIR or set EDGEPIPE_KV or EDGEPIPE_DATA") }
        do {
            let store = try openStore(storePath)
            let reservations = Reservations(store: store, blocklist: blocklist, mailer: mailer, settings: settings)
            return ReserveFilter(reservations: reservations, storeProblem: "", page: page, admins: admins)
        } catch {
            // Not fatal: the page still works, and each reservation request gets a 503.
            Log.error("cannot open the store \(storePath): \(error)")
            return ReserveFilter(reservations: nil, storeProblem: error.description, page: page, admins: admins)
        }
    }

    /// uids, one a line or comma-separated (CRLF files too), `#` comments, blanks skipped.
    static func uids(_ text: String) -> [String] {
        text.split(whereSeparator: { $0.isNewline }).flatMap { raw -> [String] in
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            return line.split(separator: ",").map { String($0.filter { !$0.isWhitespace }) }.filter { !$0.isEmpty }
        }
    }
}
