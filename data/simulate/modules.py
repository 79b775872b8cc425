"""The observation modules in the order they step each month (readers after writers on the board)."""

from __future__ import annotations

import importlib

from data.simulate.context import ObservationModule

MODULE_ORDER: tuple[str, ...] = (
    "data.simulate.observe.registration:RegistrationModule",     # S01 S02 S03 S04 S08
    "data.simulate.observe.tax:TaxModule",                       # S09 S10 S11
    "data.simulate.observe.employment:EmploymentModule",         # S17 S18 S19
    "data.simulate.observe.utilities:UtilitiesModule",           # S28 S29 S30
    "data.simulate.observe.industry:IndustryModule",             # S20 S21 S22
    "data.simulate.observe.annual_report:AnnualReportModule",    # S05 S06
    "data.simulate.observe.msa_lists:MsaListsModule",            # S07
    "data.simulate.observe.courts:CourtsModule",                 # S12 S13 S14 S15 S16
    "data.simulate.observe.penalties:PenaltiesModule",           # S23
    "data.simulate.observe.assets:AssetsModule",                 # S25 S26 S27 S31
    "data.simulate.observe.licences:LicencesModule",             # S32 S33
    "data.simulate.observe.internet:InternetModule",             # S34 S35
    "data.simulate.observe.public_credit:PublicCreditModule",    # S24 (reads the board last)
    "data.simulate.observe.platform:PlatformModule",             # platform tables (not catalog sub-items)
)


def load_module(path: str) -> ObservationModule:
    """Instantiate one module from 'package.module:Class'."""
    mod_name, cls_name = path.split(":")
    cls = getattr(importlib.import_module(mod_name), cls_name)
    return cls()


def default_modules() -> list[ObservationModule]:
    return [load_module(p) for p in MODULE_ORDER]
