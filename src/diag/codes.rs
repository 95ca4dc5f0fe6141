//! The table of diagnostic codes.
//!
//! Every code is stable once released: it may be retired, never reused. Each
//! has a page `src/diag/codes/Z0xxx.md` (what it means, an example, how to fix
//! it), compiled into the binary; a test checks that the table and the pages
//! match one to one. Ranges: Z00xx syntax, Z01xx structure (blocks and
//! attributes), Z02xx names, Z03xx imports, Z04xx values and types, Z05xx
//! warnings about intent, Z06xx errors found on the normalized intent (IR).

use super::Severity;

/// A stable diagnostic code such as `Z0201`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Code(&'static str);

/// One row of the table.
#[derive(Debug)]
pub struct CodeInfo {
    pub code: Code,
    pub severity: Severity,
    pub title: &'static str,
    pub doc: &'static str,
}

macro_rules! codes {
    ($( $name:ident = $code:literal, $sev:ident, $title:literal; )*) => {
        $( pub const $name: Code = Code($code); )*

        /// All codes, in code order.
        pub static TABLE: &[CodeInfo] = &[
            $( CodeInfo {
                code: $name,
                severity: Severity::$sev,
                title: $title,
                doc: include_str!(concat!("codes/", $code, ".md")),
            }, )*
        ];
    };
}

codes! {
    SYNTAX = "Z0001", Error, "syntax error";
    UNTERMINATED_STRING = "Z0002", Error, "unterminated string";
    BAD_ESCAPE = "Z0003", Error, "invalid escape sequence";
    TOO_DEEP = "Z0004", Error, "input nested too deeply";
    NOT_UTF8 = "Z0005", Error, "file is not valid UTF-8";

    UNKNOWN_BLOCK = "Z0101", Error, "unknown block";
    UNKNOWN_ATTRIBUTE = "Z0102", Error, "unknown attribute";
    DUPLICATE_ATTRIBUTE = "Z0103", Error, "attribute set twice";
    MISSING_ATTRIBUTE = "Z0104", Error, "missing required attribute";
    MISPLACED = "Z0105", Error, "statement not allowed here";
    BLOCK_LABEL = "Z0106", Error, "block name missing or not allowed";
    CONFLICTING_OPTION = "Z0107", Error, "option set in two places";

    UNKNOWN_NAME = "Z0201", Error, "unknown workload or gateway";
    UNKNOWN_NAMESPACE = "Z0202", Error, "unknown namespace";
    UNKNOWN_PORT = "Z0203", Error, "unknown port";
    DUPLICATE_NAME = "Z0204", Error, "name declared twice";
    UNKNOWN_CONSTANT = "Z0205", Error, "unknown constant";
    WRONG_KIND = "Z0206", Error, "reference to the wrong kind of thing";
    RESERVED_NAME = "Z0207", Error, "reserved name";

    IMPORT_NOT_FOUND = "Z0301", Error, "import not found";
    IMPORT_CYCLE = "Z0302", Error, "import cycle";
    DUPLICATE_IMPORT = "Z0303", Warning, "module imported twice";

    TYPE_MISMATCH = "Z0401", Error, "value of the wrong type";
    PORT_RANGE = "Z0402", Error, "port out of range";
    BAD_ENUM = "Z0403", Error, "value not one of the allowed choices";
    HTTP_ON_NON_HTTP = "Z0404", Error, "`http` rules on a port that does not speak HTTP";
    BAD_METHOD = "Z0405", Error, "invalid HTTP method";
    BAD_FQDN = "Z0406", Error, "malformed DNS name";
    BAD_FQDN_PATTERN = "Z0407", Error, "malformed DNS name pattern";
    BAD_CIDR = "Z0408", Error, "malformed CIDR";
    NON_CANONICAL_CIDR = "Z0409", Error, "CIDR has host bits set";
    EXCEPT_OUTSIDE = "Z0410", Error, "`except` range outside its CIDR";
    BAD_DNS1123 = "Z0411", Error, "name is not a valid DNS-1123 label";
    WORLD_TO_NON_GATEWAY = "Z0412", Error, "`world` may only reach a gateway";
    BAD_TRUST_DOMAIN = "Z0413", Error, "invalid trust domain";
    BAD_LABEL = "Z0414", Error, "invalid label key or value";
    BAD_PATH = "Z0415", Error, "invalid HTTP path";
    BAD_HEADER = "Z0416", Error, "invalid HTTP header";
    DUPLICATE_PORT_NUMBER = "Z0417", Error, "port number used twice";
    BAD_EXCEPT = "Z0418", Error, "`except` not allowed on this endpoint";
    BAD_PORT_REF = "Z0419", Error, "port reference not allowed here";
    BAD_ENDPOINT = "Z0420", Error, "endpoint not allowed on this side of a flow";
    CIDR_PREFIX_MISSING = "Z0421", Error, "CIDR without a prefix length";
    ROUTE_TO_NON_HTTP = "Z0422", Error, "route to a port that does not speak HTTP";
    BAD_SERVICE_ACCOUNT = "Z0423", Error, "invalid service account or secret name";
    EMPTY = "Z0424", Error, "empty list or selector";
    ROUTE_HOSTNAME = "Z0425", Error, "route hostnames that no listener accepts";

    UNUSED_CONSTANT = "Z0501", Warning, "unused constant";
    DUPLICATE_FLOW = "Z0502", Warning, "flow declared twice";
    SELF_FLOW = "Z0503", Warning, "flow from a workload to itself";
    NAMESPACE_TO_DATABASE = "Z0504", Warning, "a whole namespace may reach a database port";
    MATCH_ALL_PATTERN = "Z0505", Warning, "DNS pattern matches far more than one service";
    WHOLE_ADDRESS_SPACE = "Z0506", Warning, "CIDR covers the whole address space";
    DENY_WITHOUT_DNS = "Z0507", Warning, "default deny without DNS";
    UNUSED_WAYPOINT = "Z0508", Warning, "declared waypoint that fronts no workload";
    OVERLAPPING_SELECTORS = "Z0509", Warning, "workloads whose selectors overlap";

    L7_WITHOUT_WAYPOINT = "Z0601", Error, "`http` rules that no waypoint can enforce";
    PATTERN_MISREAD = "Z0602", Error, "DNS pattern Cilium would read differently";
    NO_EXTERNAL_PORT = "Z0603", Error, "external destination without a port";
    NO_MESH_IDENTITY = "Z0604", Error, "client without a mesh identity where one is needed";
    CONFLICTING_OPTIONS = "Z0605", Error, "options that contradict each other";
    CILIUM_TOO_OLD = "Z0606", Error, "Cilium version too old";
    WAYPOINT_CHOICE = "Z0607", Error, "no single waypoint for a workload";
    ROUTE_WITHOUT_FLOW = "Z0608", Error, "route that no flow allows";
    PROXY_IDENTITY = "Z0609", Error, "workload with a gateway's or waypoint's identity";
    SHARED_SERVICE = "Z0610", Error, "waypoint on a Service shared by several workloads";
    IN_CLUSTER_NAME = "Z0611", Error, "in-cluster DNS name as an external destination";
    NAME_CLASH = "Z0612", Error, "two emitted objects with one name";
    EXPECTATION_FAILED = "Z0613", Error, "expectation the emitted policy does not meet";
}

impl Code {
    pub fn as_str(self) -> &'static str {
        self.0
    }

    pub fn info(self) -> Option<&'static CodeInfo> {
        TABLE.iter().find(|c| c.code == self)
    }

    pub fn severity(self) -> Severity {
        self.info().map(|i| i.severity).unwrap_or(Severity::Error)
    }

    /// Looks a code up by its text (`ztp explain-code Z0201`).
    pub fn parse(text: &str) -> Option<Code> {
        let upper = text.trim().to_ascii_uppercase();
        TABLE.iter().map(|c| c.code).find(|c| c.0 == upper)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
