import Records

/// kv's command line (docs/kv.md has the same in more words). One table for every
/// command: KVCommand.parse refuses the options that do not apply to the one given.
public enum KVOptions {
    public static let table = OptionTable(
        program: "kv",
        synopsis: ["kv [--store DIR|URL] get KEY [--entry]",
                   "kv [--store DIR|URL] put|create KEY VALUE|- [--ttl S | --expires-at T] [--metadata JSON]",
                   "kv [--store DIR|URL] cas KEY VALUE|- --version N [--ttl S | --expires-at T] [--metadata JSON]",
                   "kv [--store DIR|URL] delete KEY",
                   "kv [--store DIR|URL] list [--prefix P] [--limit N] [--cursor C]",
                   "kv [--store DIR|URL] serve [--route NAME] [--grace S]"],
        summary: """
        The edgepipe key-value store: JSON values under string keys, with optional metadata
        and expiry, durable and atomic writes (docs/kv.md).

        Commands:
          get KEY           print the value (one line of JSON); --entry prints the whole entry
                            {"key","version","expires_at","metadata","value"}
          put KEY VALUE     write unconditionally; prints {"key","version","expires_at"}
          create KEY VALUE  write only if KEY is absent (or expired)
          cas KEY VALUE     write only if KEY's version is N (--version 0: KEY must be absent)
          delete KEY        remove KEY
          list              print {"keys":[...],"cursor":C|null}, keys in byte order; pass C
                            back with --cursor for the next page (null: last page)
          serve             filter: reads request records on stdin, answers those routed to
                            NAME (default "subscription") with the subscription of the user in
                            x-authenticated-uid, writes records on stdout (docs/kv.md)

        VALUE is JSON (a string needs its quotes: '"text"'); - reads it from stdin. Put -- before
        a VALUE that starts with '-' (kv put n -- -5).
        """,
        options: [
            .value("--store", "DIR|URL", env: "EDGEPIPE_KV", aliases: ["--kv"],
                   "the store: a directory (created when missing) or a redis:// URL\n"
                   + "(default $EDGEPIPE_DATA/kv)"),
            .flag("--entry", "get prints the whole entry"),
            .value("--ttl", "S", "expire S seconds from now (put, create, cas)"),
            .value("--expires-at", "T", "expire at Unix time T (put, create, cas)"),
            .value("--metadata", "JSON", "metadata stored beside the value (put, create, cas)"),
            .value("--version", "N", "expected version for cas"),
            .value("--prefix", "P", "list keys starting with P"),
            .value("--limit", "N", "list's page size (1-10000, default 1000)"),
            .value("--cursor", "C", "list from after the cursor"),
            .value("--route", "NAME", "serve's route name (default subscription)"),
            .value("--grace", "S", "serve: seconds a period or trial still counts after its end (0)"),
        ],
        variables: [.init("EDGEPIPE_DATA", "the store is $EDGEPIPE_DATA/kv when --store and EDGEPIPE_KV are absent"),
                    .init("EDGEPIPE_CLOCK_OFFSET", "seconds added to the clock (expiry, serve's expired status)")],
        arguments: "COMMAND ARGUMENTS...",
        epilogue: """
        Exit status:
          0 ok   1 not found (get, delete)   2 usage, invalid JSON, key or cursor
          3 key exists (create)   4 version mismatch (cas)   5 store unavailable (disk full,
          read-only, permission denied, unreachable)
          serve exits 0 at end of input, 1 when stdout closes.
        """)
}
