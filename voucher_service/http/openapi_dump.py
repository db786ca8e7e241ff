"""Write the OpenAPI document generated from the marshmallow schemas to a file.

`schemas/openapi.json` is the published contract; a test fails when the code
and the file disagree, and `make openapi` rewrites it.
"""
import json
import sys

from voucher_service import create_app


def openapi_document() -> dict:
    app = create_app({"DATABASE_URL": "sqlite://", "VOUCHERS_KEY_PASSPHRASE": ""})
    with app.app_context():
        return app.extensions["vouchers_api"].spec.to_dict()


def render(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    text = render(openapi_document())
    if argv:
        with open(argv[0], "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
