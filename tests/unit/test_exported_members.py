import alignbf


def test_all_is_locked() -> None:
    assert alignbf.__all__ == [
        "__version__",
        "AlignbfError",
        "AnalysisError",
        "ConfigError",
        "EndpointError",
        "SimSpec",
        "StoreError",
        "Study",
        "analyze_run",
        "expand",
        "export_run",
        "load_study",
        "plan_study",
        "run_command",
        "run_study",
        "score_run",
        "validate_study",
    ]


def test_every_export_resolves() -> None:
    for name in alignbf.__all__:
        assert getattr(alignbf, name) is not None


def test_stats_public_names() -> None:
    from alignbf.analysis import stats

    for name in ("hedges_g", "ttest", "pearson", "p_adjust"):
        assert callable(getattr(stats, name))
