from helpers import add_evidence


def test_lifecycle_smoke(actors):
    sme = actors.sme("ent-ks-003")
    officer = actors.officer("KS")
    r = sme.post("/applications", json={"amount_fen": 1_000_000, "purpose": "testing"})
    assert r.status_code == 201, r.json
    app_id = r.json["id"]
    r = officer.post(f"/applications/{app_id}/approve", json={})
    assert r.status_code == 200, r.json
    voucher = r.json["voucher"]
    assert voucher["face_fen"] == voucher["available_fen"] == 1_000_000
    r = sme.post("/redemptions", json={"voucher_id": voucher["id"], "provider_id": "prv-sh-001",
                                       "catalog_code": "TS-01", "service_fee_fen": 600_000, "amount_fen": 300_000},
                 headers={"Idempotency-Key": "k1"})
    assert r.status_code == 201, r.json
    rid = r.json["id"]
    r2 = sme.post("/redemptions", json={"voucher_id": voucher["id"], "provider_id": "prv-sh-001",
                                        "catalog_code": "TS-01", "service_fee_fen": 600_000, "amount_fen": 300_000},
                  headers={"Idempotency-Key": "k1"})
    assert r2.status_code == 201 and r2.json["id"] == rid
    add_evidence(actors.provider("prv-sh-001"), rid)
    r = actors.provider("prv-sh-001").post(f"/redemptions/{rid}/claim",
                                           json={"invoice_no": "INV-1", "service_fee_fen": 500_000, "amount_fen": 250_000})
    assert r.status_code == 200, r.json
    assert sme.post(f"/redemptions/{rid}/confirm").status_code == 200
    assert actors.officer("SH").post(f"/redemptions/{rid}/approve").status_code == 403
    r = officer.post(f"/redemptions/{rid}/approve")
    assert r.status_code == 200, r.json
    v = sme.get(f"/vouchers/{voucher['id']}").json
    assert (v["available_fen"], v["held_fen"], v["redeemed_fen"]) == (750_000, 0, 250_000), v
