use cachet::cached;
#[doc(hidden)]
#[allow(clippy::all, clippy::pedantic, non_snake_case, unused_variables)]
pub fn __cachet_key_first_product(category: String) -> ::cachet::__private::CallKey {
    #[allow(unused_variables)]
    let category = &category;
    ::cachet::__private::CallKey {
        cache: ::cachet::__private::cache(),
        key: {
            #[allow(unused_imports)]
            use ::cachet::__private::{PartDisplay as _, PartFast as _};
            let mut __cachet_rendered = ::cachet::__private::String::with_capacity(
                29usize,
            );
            __cachet_rendered.push_str("products:");
            (&::cachet::__private::Part(&(category))).push_to(&mut __cachet_rendered);
            __cachet_rendered
        },
        scope: ::cachet::__private::scope(
            ::cachet::__private::Option::Some("product"),
            ::alloc::boxed::box_assume_init_into_vec_unsafe(
                ::alloc::intrinsics::write_box_via_move(
                    ::alloc::boxed::Box::new_uninit(),
                    [
                        {
                            #[allow(unused_imports)]
                            use ::cachet::__private::{PartDisplay as _, PartFast as _};
                            let mut __cachet_rendered = ::cachet::__private::String::with_capacity(
                                29usize,
                            );
                            __cachet_rendered.push_str("category:");
                            (&::cachet::__private::Part(&(category)))
                                .push_to(&mut __cachet_rendered);
                            __cachet_rendered
                        },
                    ],
                ),
            ),
        ),
    }
}
pub async fn first_product(category: String) -> Option<String> {
    let __cachet_call_key: ::cachet::__private::CallKey = {
        #[allow(unused_variables)]
        let category = &category;
        ::cachet::__private::CallKey {
            cache: ::cachet::__private::cache(),
            key: {
                #[allow(unused_imports)]
                use ::cachet::__private::{PartDisplay as _, PartFast as _};
                let mut __cachet_rendered = ::cachet::__private::String::with_capacity(
                    29usize,
                );
                __cachet_rendered.push_str("products:");
                (&::cachet::__private::Part(&(category)))
                    .push_to(&mut __cachet_rendered);
                __cachet_rendered
            },
            scope: ::cachet::__private::scope(
                ::cachet::__private::Option::Some("product"),
                ::alloc::boxed::box_assume_init_into_vec_unsafe(
                    ::alloc::intrinsics::write_box_via_move(
                        ::alloc::boxed::Box::new_uninit(),
                        [
                            {
                                #[allow(unused_imports)]
                                use ::cachet::__private::{PartDisplay as _, PartFast as _};
                                let mut __cachet_rendered = ::cachet::__private::String::with_capacity(
                                    29usize,
                                );
                                __cachet_rendered.push_str("category:");
                                (&::cachet::__private::Part(&(category)))
                                    .push_to(&mut __cachet_rendered);
                                __cachet_rendered
                            },
                        ],
                    ),
                ),
            ),
        }
    };
    ::cachet::__private::call(
            __cachet_call_key,
            ::cachet::__private::plan(
                ::cachet::__private::Timeout::Default,
                ::cachet::__private::Option::None,
            ),
            |_| false,
            async move {
                #[allow(
                    unreachable_code,
                    clippy::diverging_sub_expression,
                    clippy::empty_loop,
                    clippy::let_unit_value,
                    clippy::needless_return,
                    clippy::unreachable
                )]
                if false {
                    let __cachet_fake_return: Option<String> = loop {};
                    return __cachet_fake_return;
                }
                Some(category)
            },
            ::cachet::__private::pick_value(),
        )
        .await
}
