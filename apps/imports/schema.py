"""What each import kind reads: its fields, their types, which are required, and which
missing references it may create. Pure Python (no Django import), shared by validation,
the wizard, the docs and the API.

Field types:

- ``text``: trimmed text up to ``max_length``; ``email``: an e-mail address (lower-cased);
- ``decimal``: a number with at most ``places`` decimals within [``minimum``, ``maximum``];
- ``int``: a whole number within [``minimum``, ``maximum``]; ``bool``: yes/no, true/false, 1/0;
- ``date``: a date in the mapping's ``date_format``; ``month``: YYYY-MM;
- ``currency``: a three-letter ISO 4217 code; ``enum``: one of ``choices``;
- ``ref``: a reference to another record by natural key (see ``ref`` below).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

#: Missing references an import may create when its mapping allows it.
CREATABLE: dict[str, str] = {
    "accounts": "an account named by the cell (its external id is the same text)",
    "products": "a product named by the cell (its external id is the same text)",
    "owners": "a rep user, from an e-mail address or a full name",
    "teams": "a team below the company",
    "regions": "a region whose code and name are the cell",
    "managers": "a sales manager user, from an e-mail address or a full name",
}

ROLE_CHOICES = ("executive", "manager", "rep", "revops_admin")
OUTCOME_CHOICES = ("open", "won", "lost")
SEGMENT_CHOICES = ("smb", "mid_market", "enterprise")
FORECAST_CHOICES = ("pipeline", "best_case", "commit", "closed", "omitted")
DEAL_TYPE_CHOICES = ("new", "expansion", "renewal")


@dataclass(frozen=True)
class FieldSpec:
    type: str
    required: bool = False
    label: str = ""
    synonyms: tuple[str, ...] = ()
    max_length: int | None = None
    choices: tuple[str, ...] = ()
    places: int = 2
    minimum: Decimal | int | None = None
    maximum: Decimal | int | None = None
    exclusive_minimum: bool = False
    #: For ``ref`` fields: what is referenced (account, product, user, stage, team, region)
    #: and the CREATABLE name that allows creating it when missing ("" = never).
    ref: str = ""
    creates: str = ""
    help: str = ""


@dataclass(frozen=True)
class KindSpec:
    name: str
    label: str
    fields: dict[str, FieldSpec]
    #: The fields that identify a record, for upserts and duplicate detection.
    key: tuple[str, ...]
    creatable: tuple[str, ...] = ()
    default_create: tuple[str, ...] = ()
    notes: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def required(self) -> list[str]:
        return [name for name, spec in self.fields.items() if spec.required]

    @property
    def value_mapped(self) -> list[str]:
        """Fields whose source values the wizard offers to map one by one."""
        return [name for name, spec in self.fields.items() if spec.type in ("enum", "ref")]


#: The largest amount a money column holds (apps.core.models.MoneyField: 18 digits, 2 of
#: them decimals); a larger one is refused with the others, not by the database.
MONEY_MAX = Decimal("9999999999999999.99")


def _money(required: bool = True, **kw) -> FieldSpec:
    return FieldSpec(
        "decimal", required=required, places=2, minimum=Decimal(0), maximum=MONEY_MAX, **kw
    )


KINDS: dict[str, KindSpec] = {
    "people": KindSpec(
        name="people",
        label="People",
        key=("email",),
        creatable=("teams", "regions", "managers"),
        default_create=("teams", "regions", "managers"),
        notes="Upserts users by e-mail. Missing teams, regions and managers are created.",
        fields={
            "email": FieldSpec("email", required=True, label="Email", synonyms=("e-mail", "mail")),
            "name": FieldSpec(
                "text", required=True, label="Full name", max_length=150, synonyms=("fullname",)
            ),
            "role": FieldSpec("enum", choices=ROLE_CHOICES, label="Role"),
            "title": FieldSpec("text", max_length=80, label="Title", synonyms=("job title",)),
            "team": FieldSpec("ref", ref="team", creates="teams", label="Team"),
            "region": FieldSpec("ref", ref="region", creates="regions", label="Region"),
            "manager": FieldSpec(
                "ref", ref="user", creates="managers", label="Manager", synonyms=("reports to",)
            ),
            "hired_on": FieldSpec("date", label="Hired on", synonyms=("hire date", "start date")),
        },
    ),
    "stages": KindSpec(
        name="stages",
        label="Pipeline stages",
        key=("name",),
        notes="Upserts by name. Won stages are 100 %, lost stages 0 %.",
        fields={
            "name": FieldSpec(
                "text", required=True, max_length=80, label="Stage", synonyms=("stage name",)
            ),
            "order": FieldSpec(
                "int", required=True, minimum=0, maximum=32767, label="Order", synonyms=("sort",)
            ),
            "outcome": FieldSpec("enum", required=True, choices=OUTCOME_CHOICES, label="Outcome"),
            "probability": FieldSpec(
                "decimal",
                required=True,
                places=2,
                minimum=Decimal(0),
                maximum=Decimal(100),
                label="Probability",
                synonyms=("probability %", "win probability"),
            ),
        },
    ),
    "accounts": KindSpec(
        name="accounts",
        label="Accounts",
        key=("external_id",),
        creatable=("regions",),
        notes="Upserts by external id.",
        fields={
            "external_id": FieldSpec(
                "text", required=True, max_length=64, label="Account ID", synonyms=("id",)
            ),
            "name": FieldSpec(
                "text", required=True, max_length=200, label="Account name", synonyms=("account",)
            ),
            "segment": FieldSpec("enum", choices=SEGMENT_CHOICES, label="Segment"),
            "industry": FieldSpec("text", max_length=80, label="Industry"),
            "region": FieldSpec("ref", ref="region", creates="regions", label="Region"),
            "country": FieldSpec("text", max_length=2, label="Country"),
        },
    ),
    "products": KindSpec(
        name="products",
        label="Products",
        key=("external_id",),
        notes="Upserts by external id.",
        fields={
            "external_id": FieldSpec(
                "text", required=True, max_length=64, label="Product ID", synonyms=("id", "sku")
            ),
            "name": FieldSpec(
                "text", required=True, max_length=120, label="Product name", synonyms=("product",)
            ),
            "family": FieldSpec("text", max_length=80, label="Family"),
            "is_active": FieldSpec("bool", label="Active", synonyms=("active",)),
        },
    ),
    "opportunities": KindSpec(
        name="opportunities",
        label="Opportunities",
        key=("external_id",),
        creatable=("accounts", "products", "owners"),
        notes=(
            "Upserts by external id. Every created deal and every change of a tracked field "
            "writes an opportunity history row."
        ),
        fields={
            "external_id": FieldSpec(
                "text",
                required=True,
                max_length=64,
                label="Opportunity ID",
                synonyms=("id", "deal id"),
            ),
            "name": FieldSpec(
                "text",
                required=True,
                max_length=200,
                label="Opportunity name",
                synonyms=("deal", "deal name", "opportunity"),
            ),
            "account": FieldSpec(
                "ref",
                required=True,
                ref="account",
                creates="accounts",
                label="Account",
                synonyms=("account name", "account id", "customer"),
            ),
            "owner": FieldSpec(
                "ref",
                required=True,
                ref="user",
                creates="owners",
                label="Owner",
                synonyms=("owner email", "rep", "sales rep", "opportunity owner"),
            ),
            "product": FieldSpec("ref", ref="product", creates="products", label="Product"),
            "amount": _money(label="Amount", synonyms=("value", "deal value")),
            "currency": FieldSpec("currency", label="Currency", synonyms=("ccy",)),
            "stage": FieldSpec(
                "ref", required=True, ref="stage", label="Stage", synonyms=("sales stage",)
            ),
            "forecast_category": FieldSpec(
                "enum", choices=FORECAST_CHOICES, label="Forecast category", synonyms=("forecast",)
            ),
            "deal_type": FieldSpec("enum", choices=DEAL_TYPE_CHOICES, label="Type"),
            "source": FieldSpec("text", max_length=40, label="Lead source"),
            "created_date": FieldSpec(
                "date", required=True, label="Created", synonyms=("created on", "create date")
            ),
            "close_date": FieldSpec(
                "date", required=True, label="Close date", synonyms=("closed", "close")
            ),
            "lost_reason": FieldSpec("text", max_length=120, label="Lost reason"),
        },
    ),
    "quotas": KindSpec(
        name="quotas",
        label="Quotas",
        key=("rep", "team", "month"),
        notes="One rep (e-mail or full name) or one team (name) per row, per month.",
        fields={
            "rep": FieldSpec("ref", ref="user", label="Rep", synonyms=("rep email", "owner")),
            "team": FieldSpec("ref", ref="team", label="Team"),
            "month": FieldSpec("month", required=True, label="Month", synonyms=("period",)),
            "amount": _money(label="Quota", synonyms=("quota amount", "target")),
            "currency": FieldSpec("currency", label="Currency"),
            "note": FieldSpec("text", max_length=255, label="Note"),
        },
    ),
    "subscriptions": KindSpec(
        name="subscriptions",
        label="Subscriptions",
        key=("external_id",),
        creatable=("accounts", "products"),
        notes="Upserts by external id; end date is the first day no longer billed.",
        fields={
            "external_id": FieldSpec(
                "text", required=True, max_length=64, label="Subscription ID", synonyms=("id",)
            ),
            "account": FieldSpec(
                "ref", required=True, ref="account", creates="accounts", label="Account"
            ),
            "product": FieldSpec("ref", ref="product", creates="products", label="Product"),
            "mrr": _money(label="MRR", synonyms=("monthly recurring revenue",)),
            "currency": FieldSpec("currency", label="Currency"),
            "start_date": FieldSpec("date", required=True, label="Start date", synonyms=("start",)),
            "end_date": FieldSpec("date", label="End date", synonyms=("end",)),
        },
    ),
    "nps": KindSpec(
        name="nps",
        label="NPS responses",
        key=("external_id",),
        creatable=("accounts",),
        notes=(
            "Upserts by external id; rows without one are matched on account, contact "
            "e-mail and response date."
        ),
        fields={
            "external_id": FieldSpec("text", max_length=64, label="Response ID", synonyms=("id",)),
            "account": FieldSpec(
                "ref", required=True, ref="account", creates="accounts", label="Account"
            ),
            "contact_name": FieldSpec("text", max_length=120, label="Contact", synonyms=("name",)),
            "contact_email": FieldSpec("email", label="Contact email", synonyms=("email",)),
            "score": FieldSpec(
                "int", required=True, minimum=0, maximum=10, label="Score", synonyms=("nps",)
            ),
            "comment": FieldSpec("text", max_length=5000, label="Comment"),
            "responded_on": FieldSpec(
                "date", required=True, label="Responded on", synonyms=("date", "response date")
            ),
        },
    ),
    "exchange_rates": KindSpec(
        name="exchange_rates",
        label="Exchange rates",
        key=("currency", "base_currency", "rate_date"),
        notes="Units of the base currency one unit of the currency is worth on the date.",
        fields={
            "currency": FieldSpec("currency", required=True, label="Currency"),
            "base_currency": FieldSpec("currency", label="Base currency", synonyms=("base",)),
            "rate_date": FieldSpec("date", required=True, label="Date", synonyms=("date",)),
            "rate": FieldSpec(
                "decimal",
                required=True,
                places=10,
                minimum=Decimal(0),
                exclusive_minimum=True,
                maximum=Decimal("9999999999"),
                label="Rate",
            ),
        },
    ),
}

KIND_CHOICES: list[tuple[str, str]] = [(name, spec.label) for name, spec in KINDS.items()]
