"""Rewriting a models.config as the rollout command does: one model's policy and labels
change, every comment and every other field stays as written."""

import re

import pytest

from serving.models_config_file import parse_config, rewritten

TWO_MODELS = """\
# The models this server runs.
model_config_list {
  config {
    name: "other"  # not ours: stays as it is
    base_path: "/models/other"
    model_version_policy { latest { num_versions: 2 } }
    version_labels { key: "stable" value: 7 }
  }
  config {
    # Ours.
    name: "mnist"
    base_path: "/models/mnist"
    model_platform: "tensorflow"
    # The policy below is the one rollouts replace.
    model_version_policy {
      latest {
        num_versions: 1
      }
    }
    version_labels: { key: 'canary', value: 1 }
    version_labels { key: "stable" value: 1 }  # two labels, two styles
  }
}
"""


def comments_and_plain_fields(text: str) -> list[str]:
    """Every comment, and every line of a field that is neither a policy nor a label."""
    kept = re.findall(r"#[^\n]*", text)
    kept += [line for line in text.splitlines() if line.strip().startswith(("name", "base_path"))]
    return kept


def test_rewriting_changes_the_policy_and_labels_of_one_model_only() -> None:
    text = rewritten(TWO_MODELS, "mnist", {1, 2}, {"stable": 1, "canary": 2})

    config = parse_config(text)
    other, mnist = config.model_config_list.config
    assert other == parse_config(TWO_MODELS).model_config_list.config[0]
    assert list(mnist.model_version_policy.specific.versions) == [1, 2]
    assert dict(mnist.version_labels) == {"stable": 1, "canary": 2}
    assert (mnist.name, mnist.base_path, mnist.model_platform) == (
        "mnist",
        "/models/mnist",
        "tensorflow",
    )
    # Every comment and every other line is kept, in order.
    assert comments_and_plain_fields(text) == comments_and_plain_fields(TWO_MODELS)
    assert (
        "    # The policy below is the one rollouts replace.\n    model_version_policy {\n" in text
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            'model_config_list { config { name: "mnist" base_path: "/m" } }', id="one-line"
        ),
        pytest.param(
            'model_config_list {\n  config {\n    name: "mn" "ist"\n    base_path: "/m"\n  }\n}\n',
            id="adjacent-strings-no-policy",
        ),
        pytest.param(
            "model_config_list <\n  config <\n    name: 'mnist';\n    base_path: '/m#not-a-comment'"
            "\n    model_version_policy < all < > >\n  >\n>\n",
            id="angle-brackets-and-separators",
        ),
    ],
)
def test_rewriting_follows_any_text_format_layout(text: str) -> None:
    rewritten_text = rewritten(text, "mnist", {3}, {"stable": 3})

    (entry,) = parse_config(rewritten_text).model_config_list.config
    assert list(entry.model_version_policy.specific.versions) == [3]
    assert dict(entry.version_labels) == {"stable": 3}
    assert entry.base_path in ("/m", "/m#not-a-comment")


def test_rewriting_a_model_that_is_not_there_is_refused() -> None:
    with pytest.raises(ValueError, match="no model named 'digits'"):
        rewritten(TWO_MODELS, "digits", {1}, {})
