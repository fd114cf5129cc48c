"""Chart builders are pure: the figure carries the numbers, titles and drill-down URLs."""

import json
from decimal import Decimal
from pathlib import Path

from apps.dashboards import charts


def test_bookings_against_quota_accumulates_bookings_and_target():
    # Given three months with a month lacking bookings data
    points = [
        charts.MonthPoint("Jan", Decimal("100"), Decimal("150"), "/r?m=1"),
        charts.MonthPoint("Feb", None, Decimal("150"), "/r?m=2"),
        charts.MonthPoint("Mar", Decimal("250"), Decimal("150"), "/r?m=3"),
    ]
    # When the figure is built
    fig = charts.figure_json(charts.bookings_against_quota(points, title="T", money="$"))
    bars, cumulative, target = fig["data"]
    # Then the bars are monthly, the lines cumulative, and every bar links to its records
    assert bars["y"] == [100.0, None, 250.0]
    assert cumulative["y"] == [100.0, 100.0, 350.0]
    assert target["y"] == [150.0, 300.0, 450.0]
    assert bars["customdata"] == ["/r?m=1", "/r?m=2", "/r?m=3"]
    assert fig["layout"]["title"]["text"] == "T"


def test_bookings_without_any_quota_draw_no_target_line():
    points = [charts.MonthPoint("Jan", Decimal("5"), None, "/a")]
    fig = charts.figure_json(charts.bookings_against_quota(points, title="T", money="$"))
    assert [trace["name"] for trace in fig["data"]] == ["Bookings in month", "Cumulative bookings"]


def test_attainment_bars_colour_by_target_and_skip_missing_quota():
    bars = [
        charts.AttainmentBar("East", Decimal("1.2"), "/e"),
        charts.AttainmentBar("West", Decimal("0.5"), "/w"),
        charts.AttainmentBar("North", None, "/n"),
    ]
    fig = charts.figure_json(charts.attainment_bars(bars, title="Attainment"))
    (trace,) = fig["data"]
    assert trace["y"] == ["East", "West"]
    assert trace["x"] == [120.0, 50.0]
    assert trace["marker"]["color"] == [charts.COLORS["good"], charts.COLORS["bad"]]
    assert trace["customdata"] == ["/e", "/w"]
    assert fig["layout"]["shapes"][0]["x0"] == 100


def test_sparkline_keeps_gaps_for_no_data():
    fig = charts.figure_json(charts.sparkline([Decimal("1"), None, 3], tone="good"))
    assert fig["data"][0]["y"] == [1.0, None, 3.0]
    assert fig["data"][0]["line"]["color"] == charts.COLORS["good"]


def test_figures_leave_out_the_shared_template_and_the_page_script_has_it():
    # Given a figure drawn with Plotly's default template
    fig = charts.figure_json(charts.sparkline([1, 2]))
    # Then its JSON has no template (about 7 KB each), and the one the browser adds back
    # is exactly the template every figure had (regenerate with charts.template_script)
    assert "template" not in fig["layout"]
    static = Path(__file__).resolve().parents[2] / "static" / charts.TEMPLATE_SCRIPT
    assert static.read_text() == charts.template_script()
    assert json.loads(charts.go.Figure().to_json())["layout"]["template"] == (
        charts.shared_template()
    )


def test_a_figure_with_its_own_template_keeps_it():
    fig = charts.sparkline([1, 2])
    fig.update_layout(template="simple_white")
    assert "template" in charts.figure_json(fig)["layout"]


def test_waterfall_labels_put_the_sign_before_the_symbol_and_are_not_clipped():
    # Given a pipeline that rose by new deals and fell by lost ones
    fig = charts.figure_json(
        charts.pipeline_waterfall(
            start=Decimal("31660999.80"),
            steps=[("New", Decimal("647999.92")), ("Lost", Decimal("-55000.00"))],
            end=Decimal("32253999.72"),
            start_label="On 23 Oct",
            end_label="Now",
            title="What changed",
            money="$",
            step_urls=["/new", "/lost"],
        )
    )
    (trace,) = fig["data"]
    # Then each bar is labelled as the tables write money, a fall as "-$55.0K"
    assert trace["text"] == ["$31.7M", "$648.0K", "-$55.0K", "$32.3M"]
    assert trace["hovertext"] == ["$31,661,000", "$648,000", "-$55,000", "$32,254,000"]
    assert trace["texttemplate"] == "%{text}"
    # And a label above the tallest bar is drawn outside the plot area, not cut off
    assert trace["cliponaxis"] is False
    assert trace["customdata"] == [None, "/new", "/lost", None]


def test_mrr_movement_hover_puts_the_sign_before_the_symbol():
    fig = charts.figure_json(
        charts.mrr_movements(
            ["Oct", "Nov"],
            {"New": [Decimal("1200"), None], "Churn": [Decimal("-300"), Decimal("0")]},
            [Decimal("900"), Decimal("900")],
            title="MRR",
            money="$",
        )
    )
    new, churn, _closing = fig["data"]
    assert new["hovertext"] == ["$1,200", "\u2014"]
    assert churn["hovertext"] == ["-$300", "$0"]


def test_funnel_labels_write_money_as_the_tables_and_count_deals_in_words():
    stages = [
        charts.FunnelStage("Prospecting", 1, Decimal("15700"), Decimal("0.89"), "/p"),
        charts.FunnelStage("Negotiation", 56, Decimal("4400000"), None, "/n"),
    ]
    fig = charts.figure_json(charts.pipeline_funnel(stages, title="Funnel", money="$"))
    (trace,) = fig["data"]
    assert trace["texttemplate"] == ["$15.7K \u00b7 1 deal", "$4.4M \u00b7 56 deals"]
    assert trace["y"] == ["Prospecting \u2192 89%", "Negotiation \u2192 \u2014"]
    assert trace["customdata"] == ["/p", "/n"]
