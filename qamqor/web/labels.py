"""Names of codes shown on the pages (levels, statuses, card items…), marked for translation."""

from __future__ import annotations

from qamqor.web.i18n import N_

LEVELS = {
    "A": N_("prosperous"),
    "B": N_("satisfactory"),
    "C": N_("unsatisfactory"),
    "D": N_("crisis"),
    "E": N_("emergency"),
}
ROLES = {
    "citizen": N_("Citizen"),
    "worker": N_("Social worker"),
    "analyst": N_("Ministry analyst"),
    "auditor": N_("Auditor"),
    "integrator": N_("Integrator"),
}
CASE_STATUSES = {
    "open": N_("open"),
    "closure_proposed": N_("closure proposed"),
    "closed": N_("closed"),
}
SERVICES = {
    "education": N_("education"),
    "health": N_("health"),
    "social_protection": N_("social protection"),
    "police": N_("police"),
    "probation": N_("probation"),
    "employment": N_("employment"),
}
OFFER_STATUSES = {
    "pending": N_("waiting for your answer"),
    "sent": N_("waiting for your answer"),
    "consented": N_("consented"),
    "declined": N_("declined"),
    "expired": N_("expired"),
}
APPEAL_STATUSES = {
    "open": N_("under review"),
    "accepted": N_("accepted"),
    "rejected": N_("rejected"),
}
PERIODS = {"once": N_("once"), "monthly": N_("a month"), "quarterly": N_("a quarter")}
FINDING_TYPES = {
    "amount_mismatch": N_("Amount differs from the rule"),
    "asp_commercial_property": N_("ASP to an owner of commercial property"),
    "asp_level_a_b": N_("ASP to a prosperous or satisfactory family"),
    "duplicate_payment": N_("Duplicate payment"),
    "exclusion_error": N_("Entitled but not paid"),
    "hidden_income": N_("Hidden income"),
    "incompatible_measures": N_("Incompatible measures paid together"),
    "not_entitled": N_("Paid without entitlement"),
    "paid_after_death": N_("Paid after death"),
    "paid_in_two_regions": N_("Paid in two regions"),
}
MEMBER_ROLES = {
    "head": N_("head"),
    "spouse": N_("spouse"),
    "child": N_("child"),
    "parent": N_("parent"),
    "other": N_("other relative"),
}
CARD_ITEMS = {
    "members": N_("Members"),
    "children": N_("Children under 18"),
    "infants": N_("Infants under 1"),
    "children_1_6": N_("Children aged 1 to 6"),
    "children_under_7": N_("Children under 7"),
    "dependent_children": N_("Dependent children"),
    "students": N_("Students"),
    "women": N_("Women"),
    "men": N_("Men"),
    "pensioners": N_("Pensioners"),
    "disabled": N_("People with disabilities"),
    "disabled_children": N_("Children with disabilities"),
    "disabled_group1": N_("Disability group 1"),
    "disabled_group2": N_("Disability group 2"),
    "disabled_group3": N_("Disability group 3"),
    "able_bodied": N_("Able to work"),
    "working": N_("Working"),
    "school_age_not_enrolled": N_("School-age children not in school"),
    "preschool_not_enrolled": N_("Pre-school children not in kindergarten"),
    "wages_3m": N_("Wages, last 3 months"),
    "wages_12m": N_("Wages, last 12 months"),
    "self_employment_3m": N_("Self-employment income, last 3 months"),
    "self_employment_12m": N_("Self-employment income, last 12 months"),
    "pensions_3m": N_("Pensions, last 3 months"),
    "benefits_3m": N_("Benefits, last 3 months"),
    "contributions_12m": N_("Pension contributions, last 12 months"),
    "youngest_adult_age": N_("Age of the youngest adult"),
    "income_per_capita_3m": N_("Income per person a month (3 months)"),
    "income_per_capita_12m": N_("Income per person a month (12 months)"),
    "dependency_ratio": N_("Dependants per working-age member"),
    "dwellings": N_("Dwellings owned"),
    "commercial": N_("Commercial property"),
    "land_plots": N_("Land plots"),
    "property_value": N_("Value of property"),
    "vehicles": N_("Vehicles"),
    "vehicle_value": N_("Value of vehicles"),
    "debt": N_("Debt"),
    "loan_payments": N_("Loan payments a month"),
    "max_overdue_days": N_("Longest overdue loan, days"),
    "overdue_debt": N_("Overdue debt"),
    "microcredit_debt": N_("Microcredit debt"),
    "non_mortgage_debt": N_("Non-mortgage debt"),
    "deposits": N_("Bank deposits"),
    "large_livestock": N_("Large livestock"),
    "small_livestock": N_("Small livestock"),
    "registered_unemployed": N_("Registered unemployed"),
    "social_contract": N_("Social contracts"),
    "tenure": N_("Housing tenure"),
    "housing_area_m2": N_("Housing area, m²"),
    "area_per_person": N_("Area per person, m²"),
    "water": N_("Running water"),
    "sewerage": N_("Sewerage"),
    "gas": N_("Gas"),
    "heating": N_("Heating"),
    "internet": N_("Internet"),
    "housing_costs": N_("Housing costs a month"),
}
