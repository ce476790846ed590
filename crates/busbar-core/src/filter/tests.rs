use std::collections::HashMap;

use proptest::prelude::*;

use super::eval::{like_matches, truth};
use super::parser::parse_condition;
use super::*;

/// A message with exact-name property lookup.
#[derive(Default)]
struct Msg {
    system: HashMap<String, FilterValue>,
    user: HashMap<String, FilterValue>,
}

impl Msg {
    fn new() -> Msg {
        Msg::default()
    }

    fn sys(mut self, name: &str, value: impl Into<FilterValue>) -> Msg {
        self.system.insert(name.to_owned(), value.into());
        self
    }

    fn user(mut self, name: &str, value: impl Into<FilterValue>) -> Msg {
        self.user.insert(name.to_owned(), value.into());
        self
    }

    fn null(mut self, name: &str) -> Msg {
        self.user.insert(name.to_owned(), FilterValue::Null);
        self
    }
}

impl PropertySource for Msg {
    fn system(&self, name: &str) -> Option<FilterValue> {
        self.system.get(name).cloned()
    }

    fn user(&self, name: &str) -> Option<FilterValue> {
        self.user.get(name).cloned()
    }
}

fn sample() -> Msg {
    Msg::new()
        .sys("Label", "Important")
        .sys("MessageId", "m-1")
        .sys("CorrelationId", "high")
        .sys("To", "Store5")
        .user("color", "red")
        .user("quantity", 10)
        .user("price", 2.5)
        .user("flag", true)
        .user("my prop", 7)
        .user("text", "ABC%")
        .null("nothing")
}

/// True, false or unknown.
fn tri(expression: &str, message: &Msg) -> Result<Option<bool>, FilterError> {
    let condition = parse_condition(expression)?;
    truth(&condition, message)
}

fn check(expression: &str, message: &Msg) -> Option<bool> {
    match tri(expression, message) {
        Ok(result) => result,
        Err(error) => panic!("{expression}: {error}"),
    }
}

fn matches(expression: &str, message: &Msg) -> Result<bool, FilterError> {
    SqlFilter::parse(expression)?.matches(message)
}

fn syntax_position(expression: &str) -> usize {
    match SqlFilter::parse(expression) {
        Err(FilterError::Syntax { position, .. }) => position,
        other => panic!("{expression}: expected a syntax error, got {other:?}"),
    }
}

fn is_evaluation_error(expression: &str, message: &Msg) -> bool {
    matches!(
        matches(expression, message),
        Err(FilterError::Evaluation(_))
    )
}

/// The value an expression yields, read back through a rule action.
fn value_of(expression: &str, message: &Msg) -> FilterValue {
    let action = SqlRuleAction::parse(&format!("SET result = {expression}"))
        .unwrap_or_else(|e| panic!("{expression}: {e}"));
    let mut changes = action
        .changes(message)
        .unwrap_or_else(|e| panic!("{expression}: {e}"));
    changes
        .pop()
        .and_then(|change| change.value)
        .unwrap_or_else(|| panic!("{expression}: no value"))
}

// ---- parsing ----

#[test]
fn keywords_are_case_insensitive() {
    let m = sample();
    assert_eq!(check("color = 'red' and quantity = 10", &m), Some(true));
    assert_eq!(check("color = 'red' AnD NOT quantity = 11", &m), Some(true));
    assert_eq!(check("nothing iS nUlL", &m), Some(true));
    assert_eq!(check("color LiKe 'r%'", &m), Some(true));
    assert_eq!(check("color nOt In ('blue')", &m), Some(true));
    assert_eq!(check("eXiStS(color)", &m), Some(true));
    assert_eq!(check("flag = true", &m), Some(true));
}

#[test]
fn property_references_and_scopes() {
    let m = sample();
    assert_eq!(check("sys.Label = 'Important'", &m), Some(true));
    // System property names ignore case and Subject is the newer name of Label.
    assert_eq!(check("SYS.label = 'Important'", &m), Some(true));
    assert_eq!(check("sys.Subject = 'Important'", &m), Some(true));
    assert_eq!(check("sys.messageid = 'm-1'", &m), Some(true));
    assert_eq!(check("user.color = 'red'", &m), Some(true));
    assert_eq!(check("USER.color = 'red'", &m), Some(true));
    assert_eq!(check("color = 'red'", &m), Some(true));
    assert_eq!(check("[my prop] = 7", &m), Some(true));
    assert_eq!(check("user.[my prop] = 7", &m), Some(true));
    assert_eq!(check("\"my prop\" = 7", &m), Some(true));
    let odd = Msg::new()
        .user("a]b", 1)
        .user("say \"hi\"", 2)
        .user("AND", 3);
    assert_eq!(check("[a]]b] = 1", &odd), Some(true));
    assert_eq!(check("\"say \"\"hi\"\"\" = 2", &odd), Some(true));
    assert_eq!(check("[AND] = 3", &odd), Some(true));
    // A bare `sys` is just a user property called sys.
    assert_eq!(check("sys = 1", &Msg::new().user("sys", 1)), Some(true));
}

#[test]
fn unknown_system_property_and_scope_are_refused_at_parse_time() {
    assert_eq!(
        SqlFilter::parse("sys.Colour = 1").err(),
        Some(FilterError::UnknownSystemProperty {
            position: 4,
            name: "Colour".to_owned()
        })
    );
    assert_eq!(syntax_position("app.color = 1"), 0);
    assert_eq!(syntax_position("color = 1 AND AND = 2"), 14);
    assert_eq!(syntax_position("user.and = 2"), 5);
}

#[test]
fn literals() {
    let m = sample();
    assert_eq!(check("'it''s' = 'it' + '''s'", &m), Some(true));
    assert_eq!(value_of("'it''s'", &m), FilterValue::from("it's"));
    assert_eq!(value_of("1894", &m), FilterValue::Long(1894));
    assert_eq!(value_of("1894.1204", &m), FilterValue::Double(1894.1204));
    assert_eq!(value_of("2.0", &m), FilterValue::Double(2.0));
    assert_eq!(value_of("101.5E5", &m), FilterValue::Double(101.5e5));
    assert_eq!(value_of("0.5e-2", &m), FilterValue::Double(0.005));
    assert_eq!(value_of("1E+3", &m), FilterValue::Double(1000.0));
    assert_eq!(value_of("TRUE", &m), FilterValue::Bool(true));
    assert_eq!(value_of("false", &m), FilterValue::Bool(false));
    assert_eq!(value_of("NULL", &m), FilterValue::Null);
    assert_eq!(
        value_of("-9223372036854775808", &m),
        FilterValue::Long(i64::MIN)
    );
    assert_eq!(
        value_of("9223372036854775807", &m),
        FilterValue::Long(i64::MAX)
    );
    assert_eq!(value_of("-2.5", &m), FilterValue::Double(-2.5));
    assert_eq!(syntax_position("a = 9223372036854775808"), 4);
    assert_eq!(syntax_position("a = 1e999"), 4);
    assert_eq!(syntax_position("a = 1."), 5);
    assert_eq!(syntax_position("a = 1e"), 5);
    assert_eq!(syntax_position("a = 12abc"), 4);
}

#[test]
fn syntax_errors_report_where() {
    assert_eq!(syntax_position("a = "), 4);
    assert_eq!(syntax_position("a = 'abc"), 4);
    assert_eq!(syntax_position("[abc = 1"), 0);
    assert_eq!(syntax_position("a == 1"), 3);
    assert_eq!(syntax_position("(a = 1"), 6);
    assert_eq!(syntax_position("a = 1 b"), 6);
    assert_eq!(syntax_position("a = 1 AND"), 9);
    assert_eq!(syntax_position("a # 1"), 2);
    assert_eq!(syntax_position("a ! 1"), 2);
    assert_eq!(syntax_position("@p = 1"), 0);
    assert_eq!(syntax_position("a NOT 5"), 2);
    assert_eq!(syntax_position("a IS 5"), 5);
    assert_eq!(syntax_position("a IN 'x'"), 5);
    assert_eq!(syntax_position("a IN ()"), 6);
    assert_eq!(syntax_position("EXISTS(1)"), 7);
    assert_eq!(syntax_position("a = 1 = 1"), 6);
    assert_eq!(syntax_position("frob(1) = 1"), 0);
    assert_eq!(syntax_position("newid(1) = 1"), 0);
    assert_eq!(syntax_position("p() = 1"), 0);
    // A value where a condition belongs, and the other way round.
    assert_eq!(syntax_position("color"), 0);
    assert_eq!(syntax_position("TRUE"), 0);
    assert_eq!(syntax_position("a = 1 AND 5"), 10);
    assert_eq!(syntax_position("NOT 5"), 4);
    assert_eq!(syntax_position("(a = 1) = TRUE"), 0);
    assert_eq!(syntax_position("1 + (a = 1) = 2"), 4);
    let message = format!("{}", SqlFilter::parse("a = ").expect_err("an error"));
    assert!(message.contains("position 4"), "{message}");
}

#[test]
fn empty_and_over_long_expressions_are_refused() {
    assert_eq!(syntax_position(""), 0);
    assert_eq!(syntax_position("   \t"), 0);
    let just_fits = format!("a = '{}'", "x".repeat(MAX_EXPRESSION_LENGTH - 6));
    assert_eq!(just_fits.len(), MAX_EXPRESSION_LENGTH);
    assert!(SqlFilter::parse(&just_fits).is_ok());
    let too_long = format!("a = '{}'", "x".repeat(MAX_EXPRESSION_LENGTH - 5));
    assert_eq!(
        SqlFilter::parse(&too_long).err(),
        Some(FilterError::TooLong {
            length: 1025,
            max: 1024
        })
    );
    // Length counts UTF-16 units, as the service does: each emoji is two.
    let emoji = format!("a = '{}'", "😀".repeat(510));
    assert!(matches!(
        SqlFilter::parse(&emoji),
        Err(FilterError::TooLong { length: 1026, .. })
    ));
    assert!(matches!(
        SqlRuleAction::parse(&format!("SET a = '{}'", "x".repeat(1020))),
        Err(FilterError::TooLong { .. })
    ));
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let nested = |depth: usize| format!("{}a = 1{}", "(".repeat(depth), ")".repeat(depth));
    assert!(SqlFilter::parse(&nested(MAX_NESTING)).is_ok());
    assert!(matches!(
        SqlFilter::parse(&nested(MAX_NESTING + 1)),
        Err(FilterError::TooDeep { max: 64, .. })
    ));
    assert!(matches!(
        SqlFilter::parse(&nested(500)),
        Err(FilterError::TooDeep { .. })
    ));
    assert!(matches!(
        SqlFilter::parse(&format!("{}a = 1", "NOT ".repeat(200))),
        Err(FilterError::TooDeep { .. })
    ));
    assert!(matches!(
        SqlFilter::parse(&format!("a = {}1", "-".repeat(300))),
        Err(FilterError::TooDeep { .. })
    ));
    assert!(matches!(
        SqlFilter::parse(&format!("a IN {}1{}", "(".repeat(100), ")".repeat(100))),
        Err(FilterError::TooDeep { .. })
    ));
    assert!(matches!(
        SqlRuleAction::parse(&format!("SET a = {}1{}", "(".repeat(300), ")".repeat(300))),
        Err(FilterError::TooDeep { .. })
    ));
    // Long flat chains are not nesting; they evaluate fine.
    let chain = vec!["quantity = 1"; 60].join(" OR ");
    assert_eq!(matches(&chain, &sample()), Ok(false));
    let sum = format!("{} = 200", vec!["1"; 200].join(" + "));
    assert_eq!(matches(&sum, &sample()), Ok(true));
    // The deepest allowed expression evaluates.
    assert_eq!(
        matches(&nested(MAX_NESTING), &Msg::new().user("a", 1)),
        Ok(true)
    );
}

// ---- operators ----

#[test]
fn comparison_operators() {
    let m = sample();
    for (expression, expected) in [
        ("quantity = 10", true),
        ("quantity <> 10", false),
        ("quantity != 10", false),
        ("quantity != 11", true),
        ("quantity < 11", true),
        ("quantity < 10", false),
        ("quantity <= 10", true),
        ("quantity > 9", true),
        ("quantity > 10", false),
        ("quantity >= 10", true),
        ("price > 2", true),
        ("price = 2.5", true),
        ("price < 2.6", true),
        ("2 < price", true),
        ("10 = 10.0", true),
        ("10.5 > 10", true),
        ("color = 'red'", true),
        ("color = 'Red'", false),
        ("color <> 'Red'", true),
        ("flag = TRUE", true),
        ("flag <> FALSE", true),
    ] {
        assert_eq!(check(expression, &m), Some(expected), "{expression}");
    }
}

#[test]
fn precedence() {
    let m = Msg::new().user("a", 1).user("b", 0).user("c", 0);
    // AND binds tighter than OR.
    assert_eq!(check("a = 1 OR b = 1 AND c = 1", &m), Some(true));
    assert_eq!(check("(a = 1 OR b = 1) AND c = 1", &m), Some(false));
    assert_eq!(check("b = 1 AND c = 1 OR a = 1", &m), Some(true));
    // NOT binds tighter than AND, looser than comparison.
    assert_eq!(check("NOT a = 1 AND b = 1", &m), Some(false));
    assert_eq!(check("NOT b = 1 AND c = 0", &m), Some(true));
    assert_eq!(check("NOT (b = 1 OR a = 1)", &m), Some(false));
    assert_eq!(check("NOT NOT a = 1", &m), Some(true));
    // Arithmetic binds tighter than comparison; * / % tighter than + -.
    assert_eq!(check("1 + 2 * 3 = 7", &m), Some(true));
    assert_eq!(check("(1 + 2) * 3 = 9", &m), Some(true));
    assert_eq!(check("10 - 2 - 3 = 5", &m), Some(true));
    assert_eq!(check("8 / 2 / 2 = 2", &m), Some(true));
    assert_eq!(check("2 * 3 % 4 = 2", &m), Some(true));
    assert_eq!(check("-2 * 3 = -6", &m), Some(true));
    assert_eq!(check("2 - -3 = 5", &m), Some(true));
    assert_eq!(check("- (2 + 3) = -5", &m), Some(true));
    assert_eq!(check("+a = 1", &m), Some(true));
    assert_eq!(check("a + 1 = 2 AND 2 * 2 = 4", &m), Some(true));
    assert_eq!(check("a + b * 5 IS NOT NULL", &m), Some(true));
}

#[test]
fn arithmetic_follows_csharp() {
    let m = sample();
    assert_eq!(value_of("7 / 2", &m), FilterValue::Long(3));
    assert_eq!(value_of("-7 / 2", &m), FilterValue::Long(-3));
    assert_eq!(value_of("-7 % 3", &m), FilterValue::Long(-1));
    assert_eq!(value_of("7.0 / 2", &m), FilterValue::Double(3.5));
    assert_eq!(value_of("7 % 2.5", &m), FilterValue::Double(2.0));
    assert_eq!(value_of("quantity * price", &m), FilterValue::Double(25.0));
    assert_eq!(value_of("quantity - 12", &m), FilterValue::Long(-2));
    assert_eq!(value_of("-quantity", &m), FilterValue::Long(-10));
    assert_eq!(value_of("-price", &m), FilterValue::Double(-2.5));
    assert_eq!(check("1.0 / 0 > 1000000", &m), Some(true));
    for failing in [
        "9223372036854775807 + 1 = 0",
        "-9223372036854775808 - 1 = 0",
        "4611686018427387904 * 2 = 0",
        "-(-9223372036854775808) = 0",
        "-9223372036854775808 / -1 = 0",
        "1 / 0 = 0",
        "1 % 0 = 0",
    ] {
        assert!(is_evaluation_error(failing, &m), "{failing}");
    }
}

#[test]
fn string_concatenation() {
    let m = sample();
    assert_eq!(check("'a' + 'b' = 'ab'", &m), Some(true));
    assert_eq!(check("color + '-' + quantity = 'red-10'", &m), Some(true));
    assert_eq!(value_of("1 + 'n'", &m), FilterValue::from("1n"));
    assert_eq!(value_of("'x' + 1.5", &m), FilterValue::from("x1.5"));
    assert_eq!(value_of("'x' + TRUE", &m), FilterValue::from("xTrue"));
    assert_eq!(value_of("'x' + 1e15", &m), FilterValue::from("x1E+15"));
    assert_eq!(
        value_of("'x' + 123456789012345.0", &m),
        FilterValue::from("x123456789012345")
    );
    assert_eq!(value_of("'x' + 0.0001", &m), FilterValue::from("x0.0001"));
    assert_eq!(value_of("'x' + 0.00001", &m), FilterValue::from("x1E-05"));
    assert_eq!(
        value_of("'x' + -2.5E-7", &m),
        FilterValue::from("x-2.5E-07")
    );
    assert_eq!(value_of("'x' + nothing", &m), FilterValue::Null);
    // Built strings are capped at 32767 characters, as the service caps them.
    let big = Msg::new().user("s", "z".repeat(20_000));
    assert!(is_evaluation_error("s + s = 'x'", &big));
    let fits = Msg::new().user("s", "z".repeat(16_000));
    assert_eq!(matches("s + s = 'x'", &fits), Ok(false));
}

#[test]
fn incompatible_types_are_evaluation_errors() {
    let m = sample();
    for failing in [
        "color = 1",
        "1 = color",
        "color <> 1",
        "quantity = '10'",
        "flag = 1",
        "color < 'z'",
        "'a' >= 'a'",
        "flag > FALSE",
        "color - 1 = 0",
        "flag + 1 = 2",
        "-color = 1",
        "-flag = 1",
        "quantity IN ('10', '11')",
        "p(quantity) = 1",
    ] {
        assert!(is_evaluation_error(failing, &m), "{failing}");
    }
    let error = matches("color = 1", &m).expect_err("an error");
    assert!(error.to_string().contains("string"), "{error}");
}

#[test]
fn evaluation_short_circuits_like_the_service() {
    let m = sample();
    assert_eq!(matches("1 = 0 AND color = 1", &m), Ok(false));
    assert_eq!(matches("1 = 1 OR color = 1", &m), Ok(true));
    assert!(is_evaluation_error("color = 1 AND 1 = 0", &m));
    // An unknown left operand does not decide, so the right one is evaluated.
    assert!(is_evaluation_error("missing = 1 AND color = 1", &m));
}

// ---- NULL and unknown ----

#[test]
fn missing_and_null_properties_are_unknown() {
    let m = sample();
    assert_eq!(check("missing = 1", &m), None);
    assert_eq!(check("missing <> 1", &m), None);
    assert_eq!(check("NOT missing = 1", &m), None);
    assert_eq!(check("missing > 1", &m), None);
    assert_eq!(check("nothing = 1", &m), None);
    assert_eq!(check("missing + 1 = 2", &m), None);
    assert_eq!(check("-missing = 2", &m), None);
    assert_eq!(check("quantity = NULL", &m), None);
    assert_eq!(check("NULL = NULL", &m), None);
    assert_eq!(check("NULL <> NULL", &m), None);
    // NULL operands are unknown before types are looked at.
    assert_eq!(check("color = missing", &m), None);
    assert_eq!(check("missing IS NULL", &m), Some(true));
    assert_eq!(check("missing IS NOT NULL", &m), Some(false));
    assert_eq!(check("nothing IS NULL", &m), Some(true));
    assert_eq!(check("quantity IS NULL", &m), Some(false));
    assert_eq!(check("quantity IS NOT NULL", &m), Some(true));
    assert_eq!(check("missing + 1 IS NULL", &m), Some(true));
    // A system property the message does not carry reads as NULL, not as an error.
    assert_eq!(check("sys.ReplyTo IS NULL", &m), Some(true));
    assert_eq!(check("sys.ReplyTo = 'x'", &m), None);
    // Unknown is not a match, and neither is NOT unknown.
    assert_eq!(matches("missing = 1", &m), Ok(false));
    assert_eq!(matches("NOT (missing = 1)", &m), Ok(false));
    assert_eq!(matches("missing <> 1", &m), Ok(false));
}

#[test]
fn and_or_truth_tables_match_the_documentation() {
    let m = sample();
    let t = "1 = 1";
    let f = "1 = 0";
    let u = "missing = 1";
    let values = [(t, Some(true)), (f, Some(false)), (u, None)];
    for (left, l) in values {
        for (right, r) in values {
            let and = match (l, r) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            };
            let or = match (l, r) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            };
            assert_eq!(
                check(&format!("{left} AND {right}"), &m),
                and,
                "{left} AND {right}"
            );
            assert_eq!(
                check(&format!("{left} OR {right}"), &m),
                or,
                "{left} OR {right}"
            );
        }
    }
    assert_eq!(check(&format!("NOT {u}"), &m), None);
    assert_eq!(check(&format!("NOT {t}"), &m), Some(false));
}

// ---- IN, LIKE, EXISTS ----

#[test]
fn in_lists() {
    let m = sample();
    assert_eq!(check("color IN ('red', 'blue')", &m), Some(true));
    assert_eq!(check("color IN ('green', 'blue')", &m), Some(false));
    assert_eq!(check("color NOT IN ('green', 'blue')", &m), Some(true));
    assert_eq!(check("color NOT IN ('red')", &m), Some(false));
    assert_eq!(check("color IN('red')", &m), Some(true));
    assert_eq!(check("color IN ('Red')", &m), Some(false));
    assert_eq!(check("quantity IN (1, 10.0)", &m), Some(true));
    assert_eq!(check("color IN ('r' + 'ed')", &m), Some(true));
    assert_eq!(check("color IN (NULL, 'red')", &m), Some(true));
    assert_eq!(check("color IN (NULL, 'blue')", &m), Some(false));
    assert_eq!(check("missing IN ('red')", &m), None);
    assert_eq!(check("missing NOT IN ('red')", &m), None);
    assert_eq!(
        check(
            "sys.To IN ('Store5','Store6','Store7') OR StoreId = 'Store8'",
            &m
        ),
        Some(true)
    );
}

#[test]
fn like_patterns() {
    let m = sample();
    assert_eq!(check("sys.Label LIKE '%port%'", &m), Some(true));
    assert_eq!(check("sys.Label LIKE 'Imp%'", &m), Some(true));
    assert_eq!(check("sys.Label LIKE '%ant'", &m), Some(true));
    assert_eq!(check("sys.Label LIKE 'imp%'", &m), Some(false));
    assert_eq!(check("sys.Label LIKE 'I_portant'", &m), Some(true));
    assert_eq!(check("sys.Label LIKE 'I_ortant'", &m), Some(false));
    assert_eq!(check("sys.Label LIKE 'Important_'", &m), Some(false));
    assert_eq!(check("sys.Label LIKE 'Important'", &m), Some(true));
    assert_eq!(check("sys.Label NOT LIKE '%bus%'", &m), Some(true));
    assert_eq!(check("color LIKE '%'", &m), Some(true));
    assert_eq!(check("'' LIKE '%'", &m), Some(true));
    assert_eq!(check("'' LIKE '_'", &m), Some(false));
    assert_eq!(check("missing LIKE '%'", &m), None);
    assert_eq!(check("missing NOT LIKE '%'", &m), None);
    assert_eq!(check("color LIKE missing", &m), None);
    assert_eq!(check("color LIKE 'r%' ESCAPE missing", &m), None);
    // Non-strings are matched by their text.
    assert_eq!(check("quantity LIKE '1_'", &m), Some(true));
    assert_eq!(check("flag LIKE 'True'", &m), Some(true));
    // The pattern may be computed.
    assert_eq!(check("color LIKE 'r' + '%'", &m), Some(true));
}

#[test]
fn like_escape() {
    let m = sample();
    // The documentation's example: ABC\% matches ABC% rather than anything starting ABC.
    assert_eq!(check("text LIKE 'ABC\\%' ESCAPE '\\'", &m), Some(true));
    let abcd = Msg::new().user("text", "ABCD");
    assert_eq!(check("text LIKE 'ABC\\%' ESCAPE '\\'", &abcd), Some(false));
    assert_eq!(check("text LIKE 'ABC%'", &abcd), Some(true));
    let under = Msg::new().user("s", "a_b");
    assert_eq!(check("s LIKE 'a!_b' ESCAPE '!'", &under), Some(true));
    assert_eq!(check("'axb' LIKE 'a!_b' ESCAPE '!'", &under), Some(false));
    assert_eq!(check("'a!b' LIKE 'a!!b' ESCAPE '!'", &under), Some(true));
    // A trailing escape escapes nothing.
    assert_eq!(check("'ab' LIKE 'ab!' ESCAPE '!'", &under), Some(true));
    assert!(is_evaluation_error("s LIKE 'a' ESCAPE '!!'", &under));
    assert!(is_evaluation_error("s LIKE 'a' ESCAPE ''", &under));
}

#[test]
fn like_matcher_backtracks_correctly() {
    assert!(like_matches("abcbcd", "%bc%d", None));
    assert!(like_matches("abcbcd", "a%bcd", None));
    assert!(!like_matches("abcbce", "%bc%d", None));
    assert!(like_matches("aaa", "a%a%a", None));
    assert!(!like_matches("aa", "a%a%a", None));
    assert!(like_matches("héllo wörld", "h_llo w%d", None));
    assert!(like_matches("line\nbreak", "line%", None));
    assert!(like_matches("%", "!%", Some('!')));
    assert!(!like_matches("x", "!%", Some('!')));
    assert!(!like_matches(&"a".repeat(5000), "%a%a%a%b%", None));
}

#[test]
fn exists() {
    let m = sample();
    assert_eq!(check("EXISTS(color)", &m), Some(true));
    assert_eq!(check("EXISTS (user.color)", &m), Some(true));
    assert_eq!(check("EXISTS([my prop])", &m), Some(true));
    assert_eq!(check("EXISTS(missing)", &m), Some(false));
    // A property present with a null value exists.
    assert_eq!(check("EXISTS(nothing)", &m), Some(true));
    assert_eq!(check("EXISTS(sys.Label)", &m), Some(true));
    assert_eq!(check("EXISTS(sys.ReplyTo)", &m), Some(false));
    assert_eq!(check("NOT EXISTS(missing)", &m), Some(true));
    assert_eq!(check("EXISTS(missing) OR color = 'red'", &m), Some(true));
}

#[test]
fn functions() {
    let m = sample();
    assert_eq!(check("property('my prop') = 7", &m), Some(true));
    assert_eq!(check("P('col' + 'or') = 'red'", &m), Some(true));
    assert_eq!(check("p('missing') IS NULL", &m), Some(true));
    assert_eq!(check("p(missing) IS NULL", &m), Some(true));
    assert_eq!(
        check("newid() LIKE '________-____-____-____-____________'", &m),
        Some(true)
    );
    assert_eq!(check("newid() = newid()", &m), Some(false));
}

// ---- the filter kinds ----

#[test]
fn true_false_and_sql_filters() {
    let m = sample();
    assert_eq!(Filter::True.matches(&m), Ok(true));
    assert_eq!(Filter::False.matches(&m), Ok(false));
    let sql = SqlFilter::parse("color='blue' AND quantity=10").expect("valid");
    assert_eq!(sql.expression(), "color='blue' AND quantity=10");
    assert_eq!(Filter::Sql(sql.clone()).matches(&m), Ok(false));
    let red = SqlFilter::parse("user.color='red'").expect("valid");
    assert_eq!(Filter::Sql(red).matches(&m), Ok(true));
    assert_eq!(Filter::Sql(sql.clone()), Filter::Sql(sql));
    // The true filter written as SQL, as the SDKs do.
    assert_eq!(matches("1=1", &m), Ok(true));
    assert_eq!(matches("1=0", &m), Ok(false));
    let failing = SqlFilter::parse("color = 1").expect("valid");
    assert!(matches!(
        Filter::Sql(failing).matches(&m),
        Err(FilterError::Evaluation(_))
    ));
}

#[test]
fn correlation_filter_matches_every_set_field() {
    let m = sample();
    let filter = CorrelationFilter {
        correlation_id: Some("high".to_owned()),
        subject: Some("Important".to_owned()),
        properties: vec![("color".to_owned(), FilterValue::from("red"))],
        ..CorrelationFilter::default()
    };
    assert!(filter.matches(&m));
    assert_eq!(Filter::Correlation(filter.clone()).matches(&m), Ok(true));

    let wrong_case = CorrelationFilter {
        correlation_id: Some("HIGH".to_owned()),
        ..CorrelationFilter::default()
    };
    assert!(!wrong_case.matches(&m));
    let absent = CorrelationFilter {
        reply_to: Some("x".to_owned()),
        ..CorrelationFilter::default()
    };
    assert!(!absent.matches(&m));
    let each_field = [
        (
            "MessageId",
            CorrelationFilter {
                message_id: Some("v".to_owned()),
                ..Default::default()
            },
        ),
        (
            "To",
            CorrelationFilter {
                to: Some("v".to_owned()),
                ..Default::default()
            },
        ),
        (
            "ReplyTo",
            CorrelationFilter {
                reply_to: Some("v".to_owned()),
                ..Default::default()
            },
        ),
        (
            "Label",
            CorrelationFilter {
                subject: Some("v".to_owned()),
                ..Default::default()
            },
        ),
        (
            "SessionId",
            CorrelationFilter {
                session_id: Some("v".to_owned()),
                ..Default::default()
            },
        ),
        (
            "ReplyToSessionId",
            CorrelationFilter {
                reply_to_session_id: Some("v".to_owned()),
                ..Default::default()
            },
        ),
        (
            "ContentType",
            CorrelationFilter {
                content_type: Some("v".to_owned()),
                ..Default::default()
            },
        ),
        (
            "CorrelationId",
            CorrelationFilter {
                correlation_id: Some("v".to_owned()),
                ..Default::default()
            },
        ),
    ];
    for (name, filter) in each_field {
        assert!(filter.matches(&Msg::new().sys(name, "v")), "{name}");
        assert!(!filter.matches(&Msg::new().sys(name, "w")), "{name}");
        assert!(!filter.matches(&Msg::new()), "{name}");
    }
}

#[test]
fn correlation_user_properties_compare_by_value() {
    let with = |name: &str, value: FilterValue| CorrelationFilter {
        properties: vec![(name.to_owned(), value)],
        ..CorrelationFilter::default()
    };
    let m = sample();
    assert!(with("quantity", FilterValue::Long(10)).matches(&m));
    assert!(with("quantity", FilterValue::Double(10.0)).matches(&m));
    assert!(with("price", FilterValue::Double(2.5)).matches(&m));
    assert!(!with("price", FilterValue::Long(2)).matches(&m));
    // The string "10" is not the number 10.
    assert!(!with("quantity", FilterValue::from("10")).matches(&m));
    assert!(!with("color", FilterValue::from("Red")).matches(&m));
    assert!(with("flag", FilterValue::Bool(true)).matches(&m));
    assert!(!with("missing", FilterValue::from("x")).matches(&m));
    let both = CorrelationFilter {
        properties: vec![
            ("color".to_owned(), FilterValue::from("red")),
            ("quantity".to_owned(), FilterValue::Long(11)),
        ],
        ..CorrelationFilter::default()
    };
    assert!(!both.matches(&m));
}

#[test]
fn empty_correlation_filter_matches_all_but_is_invalid() {
    let empty = CorrelationFilter::default();
    assert!(empty.matches(&Msg::new()));
    assert_eq!(empty.validate(), Err(FilterError::EmptyCorrelationFilter));
    assert_eq!(
        Filter::Correlation(empty).validate(),
        Err(FilterError::EmptyCorrelationFilter)
    );
    let one = CorrelationFilter {
        properties: vec![("a".to_owned(), FilterValue::Long(1))],
        ..CorrelationFilter::default()
    };
    assert_eq!(one.validate(), Ok(()));
    assert_eq!(Filter::True.validate(), Ok(()));
}

// ---- actions ----

fn change(scope: PropertyScope, name: &str, value: Option<FilterValue>) -> PropertyChange {
    PropertyChange {
        scope,
        name: name.to_owned(),
        value,
    }
}

fn changes(action: &str, message: &Msg) -> Result<Vec<PropertyChange>, FilterError> {
    SqlRuleAction::parse(action)?.changes(message)
}

#[test]
fn action_set_and_remove() {
    let m = sample();
    let action = "SET quantity = quantity / 2; REMOVE priority;SET sys.CorrelationId = 'low';";
    assert_eq!(
        changes(action, &m),
        Ok(vec![
            change(PropertyScope::User, "quantity", Some(FilterValue::Long(5))),
            change(PropertyScope::User, "priority", None),
            change(
                PropertyScope::System,
                "CorrelationId",
                Some(FilterValue::from("low"))
            ),
        ])
    );
    let parsed = SqlRuleAction::parse(action).expect("valid");
    assert_eq!(parsed.expression(), action);
    // Semicolons are optional, keywords ignore case.
    assert_eq!(
        changes("set a = 1 remove b SET user.c = 'x'", &m),
        Ok(vec![
            change(PropertyScope::User, "a", Some(FilterValue::Long(1))),
            change(PropertyScope::User, "b", None),
            change(PropertyScope::User, "c", Some(FilterValue::from("x"))),
        ])
    );
    assert_eq!(
        changes("SET [new prop] = 'v'", &m),
        Ok(vec![change(
            PropertyScope::User,
            "new prop",
            Some(FilterValue::from("v"))
        )])
    );
}

#[test]
fn action_system_properties() {
    let m = sample();
    assert_eq!(
        changes("SET sys.Subject = 'SalesEvent'", &m),
        Ok(vec![change(
            PropertyScope::System,
            "Label",
            Some(FilterValue::from("SalesEvent"))
        )])
    );
    // String system properties take the value's text.
    assert_eq!(
        changes("SET sys.To = quantity + 1", &m),
        Ok(vec![change(
            PropertyScope::System,
            "To",
            Some(FilterValue::from("11"))
        )])
    );
    assert_eq!(
        changes("SET sys.ReplyTo = missing", &m),
        Ok(vec![change(
            PropertyScope::System,
            "ReplyTo",
            Some(FilterValue::Null)
        )])
    );
    assert_eq!(
        SqlRuleAction::parse("REMOVE sys.Label").err(),
        Some(FilterError::CannotRemoveSystemProperty {
            position: 7,
            name: "Label".to_owned()
        })
    );
    assert_eq!(
        SqlRuleAction::parse("SET sys.SequenceNumber = 1").err(),
        Some(FilterError::ReadOnlySystemProperty {
            position: 4,
            name: "SequenceNumber".to_owned()
        })
    );
    assert!(matches!(
        SqlRuleAction::parse("SET sys.Nope = 1"),
        Err(FilterError::UnknownSystemProperty { position: 8, .. })
    ));
    assert_eq!(
        changes("SET sys.MessageId = newid()", &m)
            .map(|c| matches!(&c[0].value, Some(FilterValue::String(id)) if id.len() == 36)),
        Ok(true)
    );
}

#[test]
fn action_statements_see_earlier_ones() {
    let m = sample();
    assert_eq!(
        changes("SET a = 1; SET b = a + 1", &m),
        Ok(vec![
            change(PropertyScope::User, "a", Some(FilterValue::Long(1))),
            change(PropertyScope::User, "b", Some(FilterValue::Long(2))),
        ])
    );
    assert_eq!(
        changes("REMOVE color; SET b = color", &m),
        Ok(vec![
            change(PropertyScope::User, "color", None),
            change(PropertyScope::User, "b", Some(FilterValue::Null)),
        ])
    );
    assert_eq!(
        changes("SET sys.Label = 'x'; SET b = sys.Label + '!'", &m),
        Ok(vec![
            change(PropertyScope::System, "Label", Some(FilterValue::from("x"))),
            change(PropertyScope::User, "b", Some(FilterValue::from("x!"))),
        ])
    );
}

#[test]
fn action_converts_to_the_existing_type() {
    let m = sample().user("name", "n").user("count", 3);
    let set = |action: &str| changes(action, &m).map(|mut c| c.pop().and_then(|c| c.value));
    assert_eq!(set("SET quantity = 2.5"), Ok(Some(FilterValue::Long(2))));
    assert_eq!(set("SET quantity = 3.5"), Ok(Some(FilterValue::Long(4))));
    assert_eq!(set("SET quantity = ' 7 '"), Ok(Some(FilterValue::Long(7))));
    assert_eq!(set("SET quantity = TRUE"), Ok(Some(FilterValue::Long(1))));
    assert_eq!(set("SET price = 3"), Ok(Some(FilterValue::Double(3.0))));
    assert_eq!(
        set("SET price = '1.25'"),
        Ok(Some(FilterValue::Double(1.25)))
    );
    assert_eq!(set("SET name = 5"), Ok(Some(FilterValue::from("5"))));
    assert_eq!(set("SET name = missing"), Ok(Some(FilterValue::Null)));
    assert_eq!(
        set("SET flag = 'false'"),
        Ok(Some(FilterValue::Bool(false)))
    );
    assert_eq!(set("SET flag = 0"), Ok(Some(FilterValue::Bool(false))));
    // A property that was null or absent takes the value as it is.
    assert_eq!(set("SET nothing = 5"), Ok(Some(FilterValue::Long(5))));
    assert_eq!(set("SET fresh = 'x'"), Ok(Some(FilterValue::from("x"))));
    for impossible in [
        "SET quantity = 'ten'",
        "SET quantity = 1e30",
        "SET quantity = missing",
        "SET price = 'x'",
        "SET flag = 'yes'",
    ] {
        assert!(
            matches!(changes(impossible, &m), Err(FilterError::Evaluation(_))),
            "{impossible}"
        );
    }
}

#[test]
fn action_errors() {
    let m = sample();
    assert!(matches!(
        SqlRuleAction::parse(""),
        Err(FilterError::Syntax { position: 0, .. })
    ));
    assert!(matches!(
        SqlRuleAction::parse("UPDATE a = 1"),
        Err(FilterError::Syntax { position: 0, .. })
    ));
    assert!(matches!(
        SqlRuleAction::parse("SET"),
        Err(FilterError::Syntax { position: 3, .. })
    ));
    assert!(matches!(
        SqlRuleAction::parse("SET a 1"),
        Err(FilterError::Syntax { position: 6, .. })
    ));
    // The value of a SET is a value, not a condition.
    assert!(matches!(
        SqlRuleAction::parse("SET a = b = 1"),
        Err(FilterError::Syntax { position: 8, .. })
    ));
    assert!(matches!(
        SqlRuleAction::parse("SET a = 1;;"),
        Err(FilterError::Syntax { position: 10, .. })
    ));
    let statements = |n: usize| vec!["SET a = 1"; n].join(";");
    assert!(SqlRuleAction::parse(&statements(MAX_ACTION_STATEMENTS)).is_ok());
    assert_eq!(
        SqlRuleAction::parse(&statements(MAX_ACTION_STATEMENTS + 1)).err(),
        Some(FilterError::TooManyStatements { count: 33, max: 32 })
    );
    assert!(matches!(
        changes("SET a = 'x' - 1", &m),
        Err(FilterError::Evaluation(_))
    ));
}

#[test]
fn parsed_rules_are_shareable() {
    fn assert_shareable<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_shareable::<SqlFilter>();
    assert_shareable::<SqlRuleAction>();
    assert_shareable::<Filter>();
    assert_shareable::<CorrelationFilter>();
    assert_shareable::<FilterError>();
}

// ---- no input makes the engine panic ----

const TOKENS: &[&str] = &[
    "a",
    "b",
    "sys.Label",
    "sys.To",
    "user.c",
    "[x y]",
    "\"q\"",
    "(",
    ")",
    "(",
    ")",
    "AND",
    "OR",
    "NOT",
    "=",
    "<>",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "1",
    "0",
    "2.5",
    "1e3",
    "9223372036854775807",
    "'x'",
    "'%a_'",
    "''",
    "LIKE",
    "ESCAPE",
    "'!'",
    "IN",
    ",",
    "IS",
    "NULL",
    "EXISTS",
    "TRUE",
    "FALSE",
    "p('a')",
    "newid()",
    ";",
    "SET",
    "REMOVE",
    ".",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|t| t.join(" "))
}

fn fuzz_message() -> Msg {
    Msg::new()
        .sys("Label", "lab%el")
        .user("a", 1)
        .user("b", 2.5)
        .user("c", "text")
        .user("x y", true)
        .null("q")
}

fn exercise_filter(expression: &str) {
    let message = fuzz_message();
    match SqlFilter::parse(expression) {
        Ok(filter) => {
            assert_eq!(filter.expression(), expression);
            let _ = filter.matches(&message);
            let _ = filter.matches(&Msg::new());
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
}

fn exercise_action(expression: &str) {
    let message = fuzz_message();
    match SqlRuleAction::parse(expression) {
        Ok(action) => {
            assert_eq!(action.expression(), expression);
            if let Ok(changes) = action.changes(&message) {
                assert!(changes.len() <= MAX_ACTION_STATEMENTS);
            }
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        exercise_filter(&text);
        exercise_action(&text);
    }

    #[test]
    fn token_soup_never_panics(text in soup()) {
        exercise_filter(&text);
        exercise_action(&text);
        exercise_action(&format!("SET a = {text}"));
    }

    #[test]
    fn like_agrees_with_a_reference_matcher(
        subject in "[ab%_]{0,12}",
        pattern in "[ab%_!]{0,8}",
    ) {
        prop_assert_eq!(
            like_matches(&subject, &pattern, Some('!')),
            reference_like(&subject.chars().collect::<Vec<_>>(), &pattern.chars().collect::<Vec<_>>())
        );
    }
}

/// A direct recursive definition of LIKE with `!` as the escape, to check the
/// backtracking matcher against.
fn reference_like(subject: &[char], pattern: &[char]) -> bool {
    match pattern.split_first() {
        None => subject.is_empty(),
        Some(('!', rest)) => match rest.split_first() {
            None => subject.is_empty(),
            Some((c, rest)) => subject.first() == Some(c) && reference_like(&subject[1..], rest),
        },
        Some(('%', rest)) => (0..=subject.len()).any(|skip| reference_like(&subject[skip..], rest)),
        Some(('_', rest)) => !subject.is_empty() && reference_like(&subject[1..], rest),
        Some((c, rest)) => subject.first() == Some(c) && reference_like(&subject[1..], rest),
    }
}
