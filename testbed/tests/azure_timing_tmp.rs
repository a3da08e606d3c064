#[test]
fn timing() {
    let t = std::time::Instant::now();
    let dir = testbed::azure::contract::resolve_specs_dir(std::path::Path::new("../shared/azure-specs")).unwrap();
    let c = testbed::azure::contract::Contract::load(&dir).unwrap();
    eprintln!("load {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let at = c.find(testbed::azure::contract::SpecKind::Arm, "2026-09-01", "GET", "/subscriptions/x/resourceGroups/y/providers/Microsoft.CognitiveServices/accounts/z/deployments/d").unwrap();
    let r = c.validate_response(at, 200, Some(&serde_json::json!({"name": "x"})));
    eprintln!("compile+validate {:?} {:?}", t.elapsed(), r);
    let t = std::time::Instant::now();
    let _ = c.validate_response(at, 200, Some(&serde_json::json!({"name": "x"})));
    eprintln!("validate {:?}", t.elapsed());
}
