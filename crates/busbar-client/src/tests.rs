use super::*;
#[test]
fn host_of_strips_port() {
    assert_eq!(host_of("localhost:5672"), "localhost");
    assert_eq!(host_of("[::1]:5672"), "::1");
    assert_eq!(host_of("h"), "h");
}
