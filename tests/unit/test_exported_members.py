import alignbf


def test_all_is_locked() -> None:
    assert alignbf.__all__ == [
        "AlignbfError",
        "AnalysisError",
        "ConfigError",
        "EndpointError",
        "Run",
        "SimSpec",
        "StoreError",
        "Study",
        "__version__",
        "analyze_run",
        "arun_study",
        "expand",
        "export_run",
        "load_study",
        "open_run",
        "plan_study",
        "run_command",
        "run_study",
        "score_run",
        "validate_study",
    ]
    assert sorted(n for n in alignbf.__all__ if n != "__version__") == sorted(alignbf._EXPORTS)


def test_every_export_resolves() -> None:
    for name in alignbf.__all__:
        assert getattr(alignbf, name) is not None


def test_stats_public_names() -> None:
    from alignbf.analysis import stats

    for name in ("hedges_g", "ttest", "pearson", "p_adjust"):
        assert callable(getattr(stats, name))
