import Records

/// sign-jwt's command line: `dev` and `service-account`, one table each, so an option of
/// one is refused by the other.
enum Usage {
    static let dev = OptionTable(
        program: "sign-jwt",
        synopsis: ["sign-jwt dev --uid UID [--ttl S] [--claim NAME=VALUE]... [--claim-json NAME=JSON]... [--dev-keys DIR]",
                   "sign-jwt dev --init [--dev-keys DIR]"],
        summary: """
        Mints a JWT and writes it, with a newline, to standard output. Reads no records.

        dev: a local development token for UID, verified by `verify-jwt --dev-keys DIR`
        through the normal verification path. The first use creates DIR (mode 0700)
        with an RSA-2048 key (private.pem, mode 0600) and its JWK Set (jwks.json).
        Claims: iss and aud "edgepipe-dev", sub UID, iat, auth_time, exp = iat + TTL.
        """,
        options: [
            .value("--uid", "UID", "the subject (1-128 characters, no control characters)"),
            .value("--ttl", "S", "lifetime in seconds (default 3600, at most 2592000)"),
            .list("--claim", "NAME=VALUE", "an extra string claim"),
            .list("--claim-json", "NAME=JSON", "an extra claim of any JSON value: numbers, booleans, objects"),
            .flag("--init", "only create the key pair and JWK Set; print the JWK Set's path"),
            .value("--dev-keys", "DIR", env: "EDGEPIPE_DEV_KEYS", "key directory (default $EDGEPIPE_DATA/dev-keys)"),
        ],
        variables: [.init("EDGEPIPE_DATA", "the key directory defaults to $EDGEPIPE_DATA/dev-keys"),
                    .init("EDGEPIPE_CLOCK_OFFSET", "seconds added to the clock (shifts iat/exp, for skew tests)")],
        epilogue: exitStatus)

    static let serviceAccount = OptionTable(
        program: "sign-jwt",
        synopsis: ["sign-jwt service-account --key-file FILE|- (--aud URL | --scope SCOPE...) [--scope SCOPE]..."],
        summary: """
        service-account: a Google service-account JWT: RS256, kid = private_key_id, iss = sub =
        client_email, iat, exp = iat + 3600, aud and/or a space-separated scope.
        """,
        options: [
            .value("--key-file", "FILE", env: "GOOGLE_APPLICATION_CREDENTIALS",
                   "the service account's JSON key file; \"-\" reads it from standard\n"
                   + "input. Keys are never taken from argv."),
            .value("--aud", "URL", "the audience, e.g. https://firestore.googleapis.com/"),
            .list("--scope", "SCOPE", "an OAuth scope (several may share one value, space-separated)"),
        ],
        variables: [.init("EDGEPIPE_CLOCK_OFFSET", "seconds added to the clock (shifts iat/exp, for skew tests)")],
        epilogue: exitStatus)

    static let exitStatus = """
    Exit status: 0 on success; 1 when a key cannot be read, created or used; 2 on a usage error.
    Details: docs/sign-jwt.md
    """

    static let commands = CommandTable(program: "sign-jwt", commands: ["dev", "service-account"]) { command in
        command == "dev" ? Usage.dev : Usage.serviceAccount
    }
}
